#!/bin/sh
# Regenerates v1snap (run in oci/testdata): a format version 1 snapshot made by melcache built at
# commit 90d42d5 (the last version 1 writer). Run from a checkout of that
# commit's build: MELCACHE=/path/to/melcache-at-90d42d5 sh gen.sh
set -eu
M=${MELCACHE:?set MELCACHE to melcache built at commit 90d42d5}
T=$(mktemp -d)
D=$T/d
$M prepare --dir "$D" >/dev/null
g=$D/gocache
m=$D/gomodcache
obj() { # obj CONTENT: a GOCACHE output named by its digest
	h=$(printf '%s' "$1" | sha256sum | cut -c1-64)
	mkdir -p "$g/$(echo "$h" | cut -c1-2)"
	printf '%s' "$1" > "$g/$(echo "$h" | cut -c1-2)/$h-d"
}
printf 'Go build cache\n' > "$g/README"
obj "object one"
obj "object two"
# An action entry as Go writes it ("v1 %x %x %20d %20d\n"), pointing at
# "object one".
a=$(printf 'action one' | sha256sum | cut -c1-64)
o=$(printf 'object one' | sha256sum | cut -c1-64)
mkdir -p "$g/$(echo "$a" | cut -c1-2)"
printf 'v1 %s %s %20d %20d\n' "$a" "$o" 10 1764410000000000000 > "$g/$(echo "$a" | cut -c1-2)/$a-a"
mkdir -p "$m/cache/download/example.com/m/@v"
printf 'v1.0.0\n' > "$m/cache/download/example.com/m/@v/list"
$M push --dir "$D" "oci:$PWD/v1snap:v1" >/dev/null
# A delta: a second generation in gocache.
obj "object three"
printf 'v1.0.0\nv1.1.0\n' > "$m/cache/download/example.com/m/@v/list"
$M push --dir "$D" "oci:$PWD/v1snap:v1" >/dev/null
(cd "$D" && find gocache gomodcache -type f ! -name trim.txt | LC_ALL=C sort | xargs sha256sum) > v1snap.sums
rm -rf "$T"
