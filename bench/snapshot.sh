#!/usr/bin/env bash
# bench/snapshot.sh — melcache push/pull against the baselines, on real caches.
#
# Not run by CI (it downloads and builds real programs and takes minutes).
# Usage: bench/snapshot.sh [small|large|both] [ROUNDS]
#
# Caches (GOMODCACHE + GOCACHE from `go build -trimpath`, here `go install`
# with GOFLAGS=-trimpath, which is the same build):
#   small  oras.land/oras/cmd/oras@v1.3.6
#          + github.com/google/go-containerregistry/cmd/crane@v0.22.1   (≥ 300 MB)
#   large  small + the programs in LARGE_EXTRA below, into one cache   (~1 GB)
# Registry: Debian's docker-registry on a loopback port, storage under $WORK.
# Each round, in this order, with `sync` before each timed step:
#   tar -cf - gomodcache gocache | zstd -T0 > f     vs  melcache push (full, new repo)
#   melcache push again (unchanged), and under a new tag (unchanged: a manifest)
#                                                   vs  oras push of the two dirs
#   zstd -dc f | tar -x  (into an empty dir)         vs  melcache pull (verifies everything)
#   oras pull (into an empty dir)
# Medians over ROUNDS (default 5) rounds; peak RSS from /usr/bin/time -v.
# oras is installed by this script (go install oras.land/oras/cmd/oras@v1.3.6).
#
# BASE_REV=REV (a git revision, e.g. main) also builds melcache at REV and
# runs its full push and full pull in every round beside this tree's, the
# two in alternating order (base first in odd rounds), and prints the
# median per-round ratios tree/base: the "no regression" check.
set -euo pipefail

WHICH=${1:-small}
ROUNDS=${2:-5}
REPO_ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=${WORK:-/tmp/melcache-bench}
ORAS_VERSION=v1.3.6
CRANE_VERSION=v0.22.1
# More real programs for the ~1 GB cache (module@version, built -trimpath).
LARGE_EXTRA=${LARGE_EXTRA:-"helm.sh/helm/v3/cmd/helm@v3.18.4 sigs.k8s.io/kind@v0.29.0"}

mkdir -p "$WORK/bin"
export PATH="$WORK/bin:$PATH"

log() { printf '== %s\n' "$*" >&2; }

# --- tools -----------------------------------------------------------------
log "building melcache"
(cd "$REPO_ROOT" && go build -o "$WORK/bin/melcache" ./cmd/melcache)
BASE_REV=${BASE_REV:-}
if [ -n "$BASE_REV" ]; then
  log "building melcache at $BASE_REV (baseline)"
  rm -rf "$WORK/base-src"; mkdir -p "$WORK/base-src"
  git -C "$REPO_ROOT" archive "$BASE_REV" | tar -C "$WORK/base-src" -x
  (cd "$WORK/base-src" && go build -o "$WORK/bin/melcache-base" ./cmd/melcache)
fi
if [ ! -x "$WORK/bin/oras" ]; then
  log "installing oras $ORAS_VERSION (baseline)"
  GOBIN="$WORK/bin" go install "oras.land/oras/cmd/oras@$ORAS_VERSION"
fi

# --- caches ----------------------------------------------------------------
build_cache() { # DIR PKG@VERSION...
  local dir=$1; shift
  mkdir -p "$dir/gomodcache" "$dir/gocache" "$dir/bin"
  for p in "$@"; do
    log "building $p into $dir"
    GOMODCACHE="$dir/gomodcache" GOCACHE="$dir/gocache" GOFLAGS=-trimpath GOBIN="$dir/bin" \
      GOTOOLCHAIN=local go install "$p"
  done
  rm -rf "$dir/bin"
  touch "$dir/.built"
}
cache_for() { # small|large -> dir
  local d="$WORK/cache-$1"
  if [ ! -e "$d/.built" ]; then
    rm -rf "$d"
    case $1 in
      small) build_cache "$d" "oras.land/oras/cmd/oras@$ORAS_VERSION" \
               "github.com/google/go-containerregistry/cmd/crane@$CRANE_VERSION" ;;
      large) build_cache "$d" "oras.land/oras/cmd/oras@$ORAS_VERSION" \
               "github.com/google/go-containerregistry/cmd/crane@$CRANE_VERSION" $LARGE_EXTRA ;;
    esac
  fi
  echo "$d"
}

# --- registry --------------------------------------------------------------
. "$(dirname "$0")/lib.sh"
start_registry "$WORK/registry" || exit 1

# --- timing ----------------------------------------------------------------
# timed NAME CMD...: runs CMD after sync, appends "NAME seconds maxrss_kb".
timed() {
  local name=$1; shift
  sync
  /usr/bin/time -f '%e %M' -o "$WORK/time.out" "$@" >"$WORK/cmd.out" 2>"$WORK/cmd.err" || {
    cat "$WORK/cmd.err" >&2; echo "FAILED: $name" >&2; exit 1; }
  echo "$name $(cat "$WORK/time.out")" >> "$RESULTS"
}
wipe() { chmod -R u+w "$1" 2>/dev/null || true; rm -rf "$1"; }

# base_push SRC ROUND / base_pull ROUND: the baseline binary's full push
# (into its own repository, from a dir with no base record) and full pull
# (into an empty dir), timed like the tree's.
base_push() {
  rm -rf "$1/.melcache"
  timed base_push melcache-base push -q --dir "$1" "$HOST/base-$which-$2:full"
  rm -rf "$1/.melcache"
}
base_pull() {
  wipe "$WORK/out"; mkdir -p "$WORK/out"
  timed base_pull melcache-base pull -q --dir "$WORK/out" "$HOST/base-$which-$1:full"
  wipe "$WORK/out"; mkdir -p "$WORK/out"
}

median() { sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else printf "%.2f\n", (a[NR/2]+a[NR/2+1])/2}'; }

bench() { # small|large
  local which=$1 src
  src=$(cache_for "$which")
  RESULTS="$WORK/results-$which.txt"
  : > "$RESULTS"
  local size files
  size=$(du -sm "$src/gomodcache" "$src/gocache" | awk '{s+=$1} END {print s}')
  files=$(find "$src/gomodcache" "$src/gocache" -type f | wc -l)
  log "$which cache: $size MB, $files files"
  for r in $(seq "$ROUNDS"); do
    log "$which round $r/$ROUNDS"
    rm -f "$WORK/f.tar.zst"
    timed tar_zstd sh -c "tar -C '$src' -cf - gomodcache gocache | zstd -q -T0 -o '$WORK/f.tar.zst'"
    rm -rf "$src/.melcache"
    if [ -n "$BASE_REV" ] && [ $((r % 2)) = 1 ]; then base_push "$src" "$r"; fi
    timed melcache_push melcache push -q --dir "$src" "$HOST/bench-$which-$r:full"
    timed melcache_repush melcache push -q --dir "$src" "$HOST/bench-$which-$r:full"
    # The same unchanged dir under a new tag (issue 13: a manifest only).
    timed melcache_newtag melcache push -q --json --dir "$src" "$HOST/bench-$which-$r:newtag"
    jq -r '"newtag_bytes \(.dataBytes + .metadataBytes)"' "$WORK/cmd.out" >> "$RESULTS"
    if [ -n "$BASE_REV" ] && [ $((r % 2)) = 0 ]; then base_push "$src" "$r"; fi
    timed oras_push sh -c "cd '$src' && oras push --plain-http '$HOST/oras-$which-$r:full' gomodcache gocache"
    wipe "$WORK/out"; mkdir -p "$WORK/out"
    timed zstd_tar sh -c "zstd -q -dc '$WORK/f.tar.zst' | tar -C '$WORK/out' -x"
    wipe "$WORK/out"; mkdir -p "$WORK/out"
    if [ -n "$BASE_REV" ] && [ $((r % 2)) = 1 ]; then base_pull "$r"; fi
    timed melcache_pull melcache pull -q --dir "$WORK/out" "$HOST/bench-$which-$r:full"
    if [ -n "$BASE_REV" ] && [ $((r % 2)) = 0 ]; then base_pull "$r"; fi
    wipe "$WORK/out"; mkdir -p "$WORK/out"
    timed oras_pull sh -c "cd '$WORK/out' && oras pull --plain-http '$HOST/oras-$which-$r:full'"
    wipe "$WORK/out"
  done
  local zsize
  zsize=$(stat -c %s "$WORK/f.tar.zst")
  {
    echo "### $which cache: $size MB on disk, $files files (tar|zstd: $((zsize/1024/1024)) MB)"
    echo
    echo "| step | median s | min s | max s | peak RSS MB (median) |"
    echo "|---|---|---|---|---|"
    for step in tar_zstd melcache_push melcache_repush melcache_newtag oras_push zstd_tar melcache_pull oras_pull base_push base_pull; do
      grep -q "^$step " "$RESULTS" || continue
      local t rss
      t=$(awk -v s=$step '$1==s {print $2}' "$RESULTS")
      rss=$(awk -v s=$step '$1==s {print $3/1024}' "$RESULTS" | median)
      printf '| %s | %s | %s | %s | %.0f |\n' "$step" "$(echo "$t" | median)" "$(echo "$t" | sort -n | head -1)" "$(echo "$t" | sort -n | tail -1)" "$rss"
    done
    echo
    # Per-round ratios (each round runs both sides back to back, so the
    # machine's load hits them alike), then their median.
    printf 'median per-round ratio: push / tar|zstd = %s, pull / zstd|tar = %s, oras push / push = %s\n' \
      "$(awk '$1=="tar_zstd"{t=$2} $1=="melcache_push"{printf "%.3f\n", $2/t}' "$RESULTS" | median)" \
      "$(awk '$1=="zstd_tar"{z=$2} $1=="melcache_pull"{printf "%.3f\n", $2/z}' "$RESULTS" | median)" \
      "$(awk '$1=="melcache_push"{p=$2} $1=="oras_push"{printf "%.3f\n", $2/p}' "$RESULTS" | median)"
    printf 'unchanged dir under a new tag: median per-round time / full push = %s, uploaded bytes (max over rounds) = %s\n' \
      "$(awk '$1=="melcache_push"{p=$2} $1=="melcache_newtag"{printf "%.3f\n", $2/p}' "$RESULTS" | median)" \
      "$(awk '$1=="newtag_bytes"{print $2}' "$RESULTS" | sort -n | tail -1)"
    if [ -n "$BASE_REV" ]; then
      printf 'median per-round ratio against %s: push = %s, pull = %s\n' "$BASE_REV" \
        "$(awk '$1=="base_push"{b=$2} $1=="melcache_push"{p=$2} $1=="base_push"||$1=="melcache_push"{if (b && p) {printf "%.3f\n", p/b; b=p=0}}' "$RESULTS" | median)" \
        "$(awk '$1=="base_pull"{b=$2} $1=="melcache_pull"{p=$2} $1=="base_pull"||$1=="melcache_pull"{if (b && p) {printf "%.3f\n", p/b; b=p=0}}' "$RESULTS" | median)"
    fi
    echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo
    echo "rounds: $ROUNDS; raw: $RESULTS"
    echo
  } | tee "$WORK/summary-$which.md"
}

case $WHICH in
  small|large) bench "$WHICH" ;;
  both) bench small; bench large ;;
  *) echo "usage: $0 [small|large|both] [ROUNDS]" >&2; exit 2 ;;
esac
