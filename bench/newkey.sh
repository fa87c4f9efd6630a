#!/usr/bin/env bash
# bench/newkey.sh — issue 13's "push under a new key" case, on real Go caches and a real registry.
#
# Not run by CI (it builds oras and crane). Usage: bench/newkey.sh
# Needs bench/snapshot.sh's small cache (WORK/cache-small, built by `bench/snapshot.sh small 0`):
# its module cache serves the builds as a file:// proxy, so nothing here touches the network.
#
#   1. build oras (go install, -trimpath) into an empty prepared dir, push it as REPO:a;
#   2. build crane into the same dir (new files, and Go rewrites some entries);
#   3. the reference: the new and changed regular files since step 1, as `tar | zstd -1`
#      (the layers' level) — what an ideal delta uploads;
#   4. push the dir as REPO:ab (a new tag: the base rule picks the dir's own :a push);
#   5. push the dir to another repository of the registry (cross-repository mounts);
#   6. push it once more under a third tag, unchanged (a manifest only).
# Prints bytes uploaded (data + metadata, from push --json) against the reference. Bytes, not
# times: one run is enough, the figures are deterministic up to Go's action entries.
set -euo pipefail
REPO_ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=${WORK:-/tmp/melcache-bench}
SRC=$WORK/cache-small
D=$WORK/newkey
. "$(dirname "$0")/lib.sh"
[ -e "$SRC/.built" ] || { echo "no $SRC: run bench/snapshot.sh small 0 first" >&2; exit 1; }
(cd "$REPO_ROOT" && go build -o "$WORK/bin/melcache" ./cmd/melcache)
MC=$WORK/bin/melcache
start_registry "$WORK/registry-newkey"
bench_wipe "$D"
"$MC" prepare -q --dir "$D"
build() {
  GOMODCACHE="$D/gomodcache" GOCACHE="$D/gocache" GOFLAGS="-trimpath -mod=mod" GOBIN="$D/.bin" \
    GOPROXY="file://$SRC/gomodcache/cache/download" GOSUMDB=off GOTOOLCHAIN=local go install "$1"
}
sums() { (cd "$D" && find gomodcache gocache -type f -print0 | xargs -0 sha256sum | LC_ALL=C sort); }
push() { "$MC" push -q --json --dir "$D" "$@" | jq -r '"\(.dataBytes + .metadataBytes)\t\(.dataBytes)\t\(.baseRule // "")\t\(.blobsMounted // 0)"'; }

build oras.land/oras/cmd/oras@v1.3.6
sums > "$WORK/newkey.before"
a=$(push "$HOST/newkey/a:a")
build github.com/google/go-containerregistry/cmd/crane@v0.22.1
sums > "$WORK/newkey.after"
# New and changed files: lines of the after-list not in the before-list.
LC_ALL=C comm -13 "$WORK/newkey.before" "$WORK/newkey.after" | cut -c67- > "$WORK/newkey.changed"
ref=$(tar -C "$D" -cf - -T "$WORK/newkey.changed" | zstd -q -1 -T0 | wc -c)
ab=$(push "$HOST/newkey/a:ab")
cross=$(push "$HOST/newkey/b:ab")
same=$(push "$HOST/newkey/a:again")
{
  echo "files new or changed by the second build: $(wc -l < "$WORK/newkey.changed"), as tar | zstd -1: $ref bytes"
  printf 'push\tuploaded\tdata\tbase rule\tmounted\tuploaded / reference\n'
  for row in "first push (:a)	$a" "new key (:ab)	$ab" "other repository (b:ab)	$cross" "unchanged, new tag (:again)	$same"; do
    printf '%s\t%s\n' "$row" "$(awk -v r="$ref" -F'\t' '{printf "%.3f", $2/r}' <<<"${row#*	}")"
  done
} | tee "$WORK/newkey.summary"
