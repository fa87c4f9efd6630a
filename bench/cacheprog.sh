#!/usr/bin/env bash
# bench/cacheprog.sh — melcache cacheprog (issue 14): per-get overhead, and a
# lazy build against pull-then-build.
#
# Not run by CI (it builds real programs and takes minutes to an hour).
# Usage: bench/cacheprog.sh [overhead|lazy|both] [ROUNDS]
#
# overhead  A warm `go install -trimpath` of crane (CRANE below) three ways:
#           plain GOCACHE, GOCACHEPROG="melcache cacheprog --dir D" (local),
#           and go-cacher (go-tool-cache's disk mode, GOCACHE_DISK_DIR),
#           each warmed once, then ROUNDS rounds in rotating order with sync
#           before each timed build. Prints the medians and the ratios to
#           plain (target: cacheprog <= 1.2x).
# lazy      A cache of the PROGRAMS below (>= 5, little overlap), built with
#           melange's go/build flags (CGO_ENABLED=0 -trimpath -tags
#           netgo,osusergo -ldflags=-w), pushed as a gocache-only snapshot
#           to Debian's docker-registry on loopback. Then ROUNDS rounds,
#           alternating which goes first, of building TARGET into an empty
#           cache dir:
#             pull-then-build: melcache pull --only gocache, then go install;
#             lazy: go install through melcache cacheprog --dir D REF.
#           The module cache is shared and warm for both: only the gocache
#           differs. Prints the medians of wall time and bytes downloaded
#           (data layers; the manifest, config and index apart), the
#           snapshot's gocache layer size, and the uncompressed bytes of
#           the objects the build used (remoteBytes).
# Environment: WORK (default /tmp/melcache-bench-cacheprog), PROGRAMS,
# TARGET, CRANE. Tools built here: melcache (this tree), go-cacher
# (go install github.com/bradfitz/go-tool-cache/cmd/go-cacher@latest).
set -euo pipefail

WHICH=${1:-both}
ROUNDS=${2:-5}
REPO_ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=${WORK:-/tmp/melcache-bench-cacheprog}
CRANE=${CRANE:-github.com/google/go-containerregistry/cmd/crane@v0.22.1}
# Programs whose dependencies overlap little (crane alone is 72% of an
# oras+crane cache, so pairs from one ecosystem are avoided).
PROGRAMS=${PROGRAMS:-"$CRANE mvdan.cc/sh/v3/cmd/shfmt@v3.12.0 github.com/mikefarah/yq/v4@v4.45.4 github.com/junegunn/fzf@v0.65.0 sigs.k8s.io/kind@v0.29.0 github.com/charmbracelet/gum@v0.16.2"}
TARGET=${TARGET:-mvdan.cc/sh/v3/cmd/shfmt@v3.12.0}
MELANGE_FLAGS="-trimpath -tags=netgo,osusergo -ldflags=-w"

. "$(dirname "$0")/lib.sh"
mkdir -p "$WORK/bin"
export PATH="$WORK/bin:$PATH" GOTOOLCHAIN=local
log() { printf '== %s\n' "$*" >&2; }

log "building melcache"
(cd "$REPO_ROOT" && go build -o "$WORK/bin/melcache" ./cmd/melcache)

# timed OUT CMD...: runs CMD after sync; appends its wall seconds to OUT.
timed() {
  local out=$1 t0; shift
  sync
  t0=$(bench_now)
  "$@" >"$WORK/cmd.out" 2>"$WORK/cmd.err" || { cat "$WORK/cmd.err" >&2; echo "FAILED: $*" >&2; exit 1; }
  bench_since "$t0" >> "$out"; echo >> "$out"
}
median_of() { grep -v '^$' "$1" | bench_median; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f", a/b}'; }

overhead() {
  local d=$WORK/overhead modes=(plain cacheprog gocacher) m r i
  [ -x "$WORK/bin/go-cacher" ] || { log "installing go-cacher"; GOBIN="$WORK/bin" go install github.com/bradfitz/go-tool-cache/cmd/go-cacher@latest; }
  bench_wipe "$d"; mkdir -p "$d/modcache"
  for m in "${modes[@]}"; do mkdir -p "$d/$m"; : > "$d/$m.times"; done
  build() { # MODE
    local env=(GOMODCACHE="$d/modcache" GOBIN="$d/bin-$1" GOFLAGS=-trimpath)
    case $1 in
      plain) env+=(GOCACHE="$d/plain/gocache") ;;
      cacheprog) env+=(GOCACHE="$d/cacheprog/unused" GOCACHEPROG="melcache cacheprog --dir $d/cacheprog") ;;
      gocacher) env+=(GOCACHE="$d/gocacher/unused" GOCACHE_DISK_DIR="$d/gocacher/disk" GOCACHEPROG="go-cacher") ;;
    esac
    env "${env[@]}" go install "$CRANE"
  }
  for m in "${modes[@]}"; do log "warming $m"; build "$m" >/dev/null 2>&1; done
  for r in $(seq "$ROUNDS"); do
    for i in 0 1 2; do
      m=${modes[$(( (i + r) % 3 ))]}
      log "overhead round $r: $m"
      timed "$d/$m.times" build "$m"
    done
  done
  local p c g
  p=$(median_of "$d/plain.times"); c=$(median_of "$d/cacheprog.times"); g=$(median_of "$d/gocacher.times")
  printf '\nwarm go install of %s, medians of %s rounds (s)\n' "$CRANE" "$ROUNDS"
  printf '  plain GOCACHE        %s\n  melcache cacheprog   %s  (%sx plain)\n  go-cacher (disk)     %s  (%sx plain)\n' \
    "$p" "$c" "$(ratio "$c" "$p")" "$g" "$(ratio "$g" "$p")"
}

lazy() {
  local d=$WORK/lazy r ref full=$WORK/lazy/full
  start_registry "$WORK/registry" || exit 1
  ref=$HOST/cacheprog-bench:all
  mkdir -p "$d"
  if [ ! -e "$full/.built" ]; then
    bench_wipe "$full"; mkdir -p "$full/gomodcache" "$full/gocache"
    for p in $PROGRAMS; do
      log "building $p (melange's flags)"
      CGO_ENABLED=0 GOMODCACHE="$full/gomodcache" GOCACHE="$full/gocache" GOBIN="$d/bin" GOFLAGS="$MELANGE_FLAGS" go install "$p"
    done
    touch "$full/.built"
  fi
  log "pushing the gocache of $(echo $PROGRAMS | wc -w) programs"
  rm -rf "$full/.melcache"
  melcache push -q --only gocache --json --dir "$full" "$ref" > "$d/push.json"
  : > "$d/pull.times"; : > "$d/lazy.times"; : > "$d/pull.bytes"; : > "$d/lazy.bytes"; : > "$d/lazy.index"; : > "$d/lazy.used"
  # empty_dir runs before each timed build, untimed: removing the last
  # round's dir (288 MB after a pull, far less after a lazy build) inside
  # the timed part charged it to whichever build came next.
  empty_dir() { bench_wipe "$d/D"; mkdir -p "$d/D"; }
  pull_then_build() {
    melcache pull -q --json --only gocache --dir "$d/D" "$ref" > "$d/pull.json"
    CGO_ENABLED=0 GOMODCACHE="$full/gomodcache" GOCACHE="$d/D/gocache" GOBIN="$d/bin-pull" GOFLAGS="$MELANGE_FLAGS" GOPROXY="file://$full/gomodcache/cache/download" GOSUMDB=off go install "$TARGET"
  }
  lazy_build() {
    CGO_ENABLED=0 GOMODCACHE="$full/gomodcache" GOCACHE="$d/unused" GOBIN="$d/bin-lazy" GOFLAGS="$MELANGE_FLAGS" GOPROXY="file://$full/gomodcache/cache/download" GOSUMDB=off \
      GOCACHEPROG="melcache cacheprog -q --dir $d/D --stats-json $d/lazy.json $ref" go install "$TARGET"
  }
  for r in $(seq "$ROUNDS"); do
    log "lazy round $r"
    if [ $((r % 2)) = 1 ]; then empty_dir; timed "$d/pull.times" pull_then_build; empty_dir; timed "$d/lazy.times" lazy_build
    else empty_dir; timed "$d/lazy.times" lazy_build; empty_dir; timed "$d/pull.times" pull_then_build; fi
    jq -r .dataBytes "$d/pull.json" >> "$d/pull.bytes"
    jq -r .remoteDownloaded "$d/lazy.json" >> "$d/lazy.bytes"
    jq -r .remoteIndexBytes "$d/lazy.json" >> "$d/lazy.index"
    jq -r .remoteBytes "$d/lazy.json" >> "$d/lazy.used"
  done
  cmp "$d/bin-pull/$(basename "${TARGET%@*}")" "$d/bin-lazy/$(basename "${TARGET%@*}")" || echo "WARNING: the binaries differ" >&2
  printf '\nbuild of %s from a snapshot of: %s\n' "$TARGET" "$PROGRAMS"
  printf '  snapshot gocache: %s bytes compressed (%s files, %s bytes)\n' \
    "$(jq -r .dataBytes "$d/push.json")" "$(jq -r .files "$d/push.json")" "$(jq -r .bytes "$d/push.json")"
  printf '  medians of %s rounds   wall (s)   downloaded (data)   index etc.\n' "$ROUNDS"
  printf '  pull then build        %8s   %17s   %s\n' "$(median_of "$d/pull.times")" "$(median_of "$d/pull.bytes")" "$(jq -r .metadataBytes "$d/pull.json")"
  printf '  lazy (cacheprog REF)   %8s   %17s   %s\n' "$(median_of "$d/lazy.times")" "$(median_of "$d/lazy.bytes")" "$(median_of "$d/lazy.index")"
  printf '  objects the lazy build used: %s bytes uncompressed\n' "$(median_of "$d/lazy.used")"
  # The targets. An object's compressed size is not recorded (frames
  # compress many files together): the layer's own ratio stands for it.
  awk -v used="$(median_of "$d/lazy.used")" -v down="$(median_of "$d/lazy.bytes")" \
      -v cdata="$(jq -r .dataBytes "$d/push.json")" -v udata="$(jq -r .bytes "$d/push.json")" \
      -v tl="$(median_of "$d/lazy.times")" -v tp="$(median_of "$d/pull.times")" 'BEGIN {
    cused = used * cdata / udata
    printf "  used, compressed at the layer'"'"'s ratio: %.0f bytes; lazy downloaded %.2fx that (target <= 2)\n", cused, down / cused
    printf "  share of the snapshot: used %.1f%%, downloaded %.1f%% (target <= used + 10 points)\n", 100 * used / udata, 100 * down / cdata
    printf "  lazy wall / pull-then-build wall: %.2f (target <= 1)\n", tl / tp
  }'
}

case $WHICH in
  overhead) overhead ;;
  lazy) lazy ;;
  both) overhead; lazy ;;
  *) echo "usage: $0 [overhead|lazy|both] [ROUNDS]" >&2; exit 2 ;;
esac
