#!/usr/bin/env bash
# bench/build.sh — `melcache build` cold vs warm, through the melange stand-in
# (internal/melangetest: bwrap, network unshared, go/build's -trimpath) on a
# real program.
#
# Not run by CI (it builds real programs for minutes).
# Usage: bench/build.sh [crane|hello] [ROUNDS]
#
#   crane  github.com/google/go-containerregistry@v0.22.1, ./cmd/crane
#          (the module's source from the module proxy; ~90 packages)
#   hello  the stand-in's test module (internal/melangetest/testdata/hello:
#          cobra and x/mod)
#
# Setup (untimed): the source tree with a melange.yaml (go/build + a runs:
# smoke test), a file:// module proxy filled once with `go mod download`
# through your GOPROXY (so cold rounds do not time the network), Debian's
# docker-registry on a loopback port, and one cold build pushed to it.
#
# Each round, alternating, with `sync` before each and fresh dirs:
#   cold  melcache build --preload            empty cache dir; modules from the
#                                              file:// proxy; push nothing
#   warm  melcache build --pull REG/bench:T   empty cache dir; GOPROXY=off;
#                                              restore (download, verify, swap)
#                                              included
# SETUP_ONLY=1 stops after the (network-bound) setup.
# Wall times of the whole `melcache build` command; medians over ROUNDS
# (default 5).
set -euo pipefail

WHICH=${1:-crane}
ROUNDS=${2:-5}
REPO_ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=${WORK:-/tmp/melcache-bench-build}
GGCR_VERSION=v0.22.1
ARCH=$(case $(go env GOARCH) in amd64) echo x86_64 ;; arm64) echo aarch64 ;; *) go env GOARCH ;; esac)

log() { printf '== %s\n' "$*" >&2; }
wipe() { chmod -R u+w "$1" 2>/dev/null || true; rm -rf "$1"; }
median() { sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else printf "%.2f\n", (a[NR/2]+a[NR/2+1])/2}'; }

mkdir -p "$WORK/bin"
log "building melcache and the melange stand-in"
(cd "$REPO_ROOT" && go build -o "$WORK/bin/melcache" ./cmd/melcache \
  && go build -o "$WORK/bin/melange" ./internal/melangetest/cmd/melange-standin)

# --- source ----------------------------------------------------------------
SRC=$WORK/src-$WHICH
if [ ! -e "$SRC/melange.yaml" ]; then
  wipe "$SRC"
  case $WHICH in
  crane)
    dir=$(cd "$WORK" && GOFLAGS= go mod download -json "github.com/google/go-containerregistry@$GGCR_VERSION" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
    cp -r "$dir" "$SRC"; chmod -R u+w "$SRC"
    PKG=./cmd/crane; OUT=crane; SMOKE='version' ;;
  hello)
    cp -r "$REPO_ROOT/internal/melangetest/testdata/hello" "$SRC"
    PKG=./cmd/hello; OUT=hello; SMOKE='' ;;
  *) echo "usage: $0 [crane|hello] [ROUNDS]" >&2; exit 2 ;;
  esac
  cat > "$SRC/melange.yaml" <<YAML
package:
  name: $OUT
  version: 1.0.0
  epoch: 0
environment:
  contents:
    packages: [go-1.26, busybox]
pipeline:
  - uses: go/build
    with:
      packages: $PKG
      output: $OUT
  - name: smoke test
    runs: \${{targets.contextdir}}/usr/bin/$OUT $SMOKE
YAML
fi

# --- module proxy (file://, filled once through your GOPROXY) --------------
PROXY=$WORK/proxy-$WHICH
if [ ! -e "$PROXY/.done" ]; then
  log "filling the file:// module proxy for $WHICH"
  wipe "$PROXY"; mkdir -p "$PROXY"
  (cd "$SRC" && GOMODCACHE="$PROXY" GOFLAGS=-mod=mod GOTOOLCHAIN=local go mod download)
  touch "$PROXY/.done"
fi
export GOSUMDB=off GOTOOLCHAIN=local GOFLAGS=
if [ -n "${SETUP_ONLY:-}" ]; then log "setup done: $SRC, $PROXY"; exit 0; fi

# --- registry --------------------------------------------------------------
. "$(dirname "$0")/lib.sh"
start_registry "$WORK/registry" || exit 1
REF=$HOST/bench/$WHICH:$ARCH

MC=("$WORK/bin/melcache" build "$SRC/melange.yaml" --melange "$WORK/bin/melange" --offline --json)
cold() { # DIR [extra flags]
  local d=$1; shift
  GOPROXY="file://$PROXY/cache/download" "${MC[@]}" --dir "$d" --preload "$@"
}
warm() { # DIR
  GOPROXY=off "${MC[@]}" --dir "$1" --pull "$REF"
}

log "seeding the registry with one cold build of $WHICH"
wipe "$WORK/seed"; mkdir -p "$WORK/seed"
cold "$WORK/seed/cache" --push "$REF" >"$WORK/seed.json" 2>"$WORK/seed.err" || { cat "$WORK/seed.err" >&2; exit 1; }
wipe "$WORK/seed"

RESULTS=$WORK/results-$WHICH.txt
: > "$RESULTS"
timed() { # NAME FUNC DIR
  local name=$1 fn=$2 d=$3
  wipe "$(dirname "$d")"; mkdir -p "$(dirname "$d")"
  sync
  local t0 t1
  t0=$(date +%s.%N)
  $fn "$d" >"$WORK/$name.json" 2>"$WORK/$name.err" || { cat "$WORK/$name.err" >&2; echo "FAILED: $name" >&2; exit 1; }
  t1=$(date +%s.%N)
  local hits misses
  hits=$(sed -n 's/^  "hits": \([0-9]*\),$/\1/p' "$WORK/$name.json")
  misses=$(sed -n 's/^  "misses": \([0-9]*\),$/\1/p' "$WORK/$name.json")
  echo "$name $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f", b-a}') ${hits:-0} ${misses:-0}" >> "$RESULTS"
  wipe "$(dirname "$d")"
}
for r in $(seq "$ROUNDS"); do
  log "round $r/$ROUNDS: cold"
  timed cold cold "$WORK/round/cache"
  log "round $r/$ROUNDS: warm"
  timed warm warm "$WORK/round/cache"
done

c=$(awk '$1=="cold"{print $2}' "$RESULTS" | median)
w=$(awk '$1=="warm"{print $2}' "$RESULTS" | median)
echo
echo "$WHICH on $(nproc) cores, $ROUNDS rounds, $(go version | awk '{print $3}')"
echo "| build | median s | min s | max s | GOCACHE hits | misses |"
echo "|---|---|---|---|---|---|"
for s in cold warm; do
  t=$(awk -v s=$s '$1==s{print $2}' "$RESULTS")
  printf '| %s | %s | %s | %s | %s | %s |\n' "$s" "$(echo "$t" | median)" "$(echo "$t" | sort -n | head -1)" "$(echo "$t" | sort -n | tail -1)" \
    "$(awk -v s=$s '$1==s{print $3}' "$RESULTS" | median)" "$(awk -v s=$s '$1==s{print $4}' "$RESULTS" | median)"
done
awk -v c="$c" -v w="$w" 'BEGIN{printf "warm / cold = %.1f%%\n", 100*w/c}'
