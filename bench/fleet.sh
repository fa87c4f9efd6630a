#!/usr/bin/env bash
# bench/fleet.sh — melcache across a fleet of builders against the actions/cache model (issue 13).
#
# Not run by CI (it builds real programs for about half an hour).
# Usage: bench/fleet.sh
#   FLEET_LIMIT=N     run only the first N builds of the sequence (default: all)
#   FLEET_COLD=0      skip the cold builds (their columns are "-"): about a third less time
#   FLEET_DRY_RUN=1   print the plan (keys, what each model would restore) and exit: no network,
#                     no registry, no build
#   WORK=DIR          scratch dir (default /tmp/melcache-bench-fleet); results in WORK/results
#   FLEET_SCOPE=fleet (default) one registry repository (HOST/fleet/all) and one actions/cache
#                     scope for every program, as the issue's key go-{go}-{arch}-{hash:go.sum} has no
#                     program in it and wolfi builds every package from one repository;
#               =program  one repository (HOST/fleet/PROGRAM) and one model scope per program
#
# The sequence is bench/fleet-sequence.tsv, committed before the first measured run: real
# programs at successive released versions, one build per (program, version, builder) row.
#
# Setup (untimed, once): melcache is built; each program version's module is downloaded through
# your GOPROXY (Go's default when unset) into WORK/mirror, a GOMODCACHE whose cache/download then
# serves every build as GOPROXY=file://… (GOSUMDB=off: go.sum checks every module), so no timed
# step touches the network; its go.sum must hash to the sequence's gosum16. Debian's
# docker-registry on a loopback port, one repository per program (HOST/fleet/PROGRAM), as an
# actions/cache scope is one repository.
#
# Each build of PROGRAM@VERSION on builder B, with the key go-{go}-{arch}-{hash:go.sum} and the
# restore key go-{go}-{arch}- (both expanded by melcache itself; {go} is `go env GOVERSION`'s
# minor version):
#   cold      once per program version, at its first build: an empty cache dir, the same build
#             (module extraction from the file:// mirror included)
#   melcache  WORK/mc/B (a prepared melcache cache dir that lives across the sequence):
#             pull --missing-ok --key --restore-keys (a merge), mark, build, status, push --key
#             (plus --restore-keys when `melcache push --help` lists it)
#   model     WORK/ac/B (a second, separate set of builder dirs, built for real, emptied before
#             each build as an ephemeral runner's would be, so each archive holds one program's
#             caches and the model's bytes are not inflated by other programs): restore the
#             archive of the exact key, else of the newest key with the restore prefix, with
#             `zstd -dc | tar -x` over the dir; mark, build, status; save `tar | zstd -1 -T0` of
#             gomodcache and gocache under the key unless the key already has an archive
#             (archives are immutable, as in actions/cache). zstd level 1, as melcache's layers
#             (klauspost's fastest level).
# A build is `go build -trimpath -o OUT PACKAGE` in a fresh copy of the module's source with
# GOMODCACHE/GOCACHE in the builder's dir, GOFLAGS=-mod=mod, CGO_ENABLED=0, GOTOOLCHAIN=local.
# Compile actions run and reused are melcache's own count (`mark` before the build, `status
# --json` .lastBuild.compileActions after): GOCACHE entries whose output is a compiled package.
# Bytes up and down for melcache are its --json dataBytes + metadataBytes; for the model, the
# archive's size. At the end: registry storage (du of its storage dir) with every tag, then after
# `melcache gc --keep-last 1` per repository and the registry's garbage-collect; the model's
# archives likewise (all, and the newest per program).
set -euo pipefail
shopt -s inherit_errexit

REPO_ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=${WORK:-/tmp/melcache-bench-fleet}
SEQ=$REPO_ROOT/bench/fleet-sequence.tsv
LIMIT=${FLEET_LIMIT:-0}
SCOPE=${FLEET_SCOPE:-fleet}
case $SCOPE in fleet|program) ;; *) echo "FLEET_SCOPE=$SCOPE: want fleet or program" >&2; exit 2 ;; esac
# scope_of PROGRAM: the repository (and model scope) name a build of PROGRAM uses.
scope_of() { if [ "$SCOPE" = program ]; then echo "$1"; else echo all; fi; }
RES=$WORK/results
KEY='go-{go}-{arch}-{hash:go.sum}'
RESTORE='go-{go}-{arch}-'

. "$(dirname "$0")/lib.sh"
log() { printf '== %s\n' "$*" >&2; }

GOMINOR=$(go env GOVERSION | sed -n 's/^go\([0-9]*\.[0-9]*\).*/\1/p')
ARCH=$(bench_arch)
PREFIX=go-$GOMINOR-$ARCH-

# --- the sequence ------------------------------------------------------------
# Arrays indexed by build (0-based): program, module, version, package, builder, go.sum hash.
PROG=() MOD=() VER=() PKG=() BLD=() SUM=()
while IFS=$'\t' read -r step prog mod ver pkg bld _ sum; do
  case $step in ''|'#'*) continue ;; esac
  [ "$LIMIT" -gt 0 ] && [ "${#PROG[@]}" -ge "$LIMIT" ] && break
  PROG+=("$prog") MOD+=("$mod") VER+=("$ver") PKG+=("$pkg") BLD+=("$bld") SUM+=("$sum")
done < "$SEQ"
N=${#PROG[@]}
[ "$N" -gt 0 ] || { echo "no builds in $SEQ" >&2; exit 2; }

# --- dry run: the plan, from the sequence alone ------------------------------
if [ -n "${FLEET_DRY_RUN:-}" ]; then
  declare -A have=() seen=()
  printf 'step\tbuild\tbuilder\tkey\tmodel restores\tcold build\n'
  for i in $(seq 0 $((N-1))); do
    k=$PREFIX${SUM[$i]} p=${PROG[$i]} what=miss cold=
    if [ -n "${have[$p/$k]:-}" ]; then what="exact $k"; elif [ -n "${have[$p]:-}" ]; then what="prefix ${have[$p]}"; fi
    [ -n "${seen[$p@${VER[$i]}]:-}" ] || cold=yes
    have[$p/$k]=1 seen[$p@${VER[$i]}]=1
    [ "$what" = "exact $k" ] || have[$p]=$k
    printf '%s\t%s@%s\t%s\t%s\t%s\t%s\n' $((i+1)) "$p" "${VER[$i]}" "${BLD[$i]}" "$k" "$what" "$cold"
  done
  exit 0
fi

# --- tools ---------------------------------------------------------------------
mkdir -p "$WORK/bin"
log "building melcache"
(cd "$REPO_ROOT" && go build -o "$WORK/bin/melcache" ./cmd/melcache)
MC=$WORK/bin/melcache
PUSH_RK=()
if "$MC" push --help | grep -q -- '--restore-keys'; then PUSH_RK=(--restore-keys "$RESTORE"); fi

# --- sources and the file:// module mirror (network, untimed) ------------------
MIRROR=$WORK/mirror
src_of() { echo "$WORK/src/$1@$2"; } # PROGRAM VERSION
for i in $(seq 0 $((N-1))); do
  s=$(src_of "${PROG[$i]}" "${VER[$i]}")
  [ -e "$s/.fleet-ready" ] && continue
  log "fetching ${MOD[$i]}@${VER[$i]} and its modules into the mirror"
  d=$(cd /tmp && GOMODCACHE=$MIRROR GOFLAGS= GOTOOLCHAIN=local go mod download -json "${MOD[$i]}@${VER[$i]}" | jq -r .Dir)
  got=$(sha256sum "$d/go.sum" | cut -c1-16)
  [ "$got" = "${SUM[$i]}" ] || { echo "${MOD[$i]}@${VER[$i]}: go.sum hashes to $got, the sequence pins ${SUM[$i]}" >&2; exit 1; }
  bench_wipe "$s"; mkdir -p "$(dirname "$s")"; cp -r "$d" "$s"; chmod -R u+w "$s"
  (cd "$s" && GOMODCACHE=$MIRROR GOFLAGS=-mod=mod GOTOOLCHAIN=local CGO_ENABLED=0 go mod download \
    && GOMODCACHE=$MIRROR GOFLAGS=-mod=mod GOTOOLCHAIN=local CGO_ENABLED=0 go list -deps "${PKG[$i]}" >/dev/null)
  touch "$s/.fleet-ready"
done
export GOPROXY=file://$MIRROR/cache/download GOSUMDB=off GOTOOLCHAIN=local GOFLAGS=-mod=mod CGO_ENABLED=0

# --- registry and dirs -------------------------------------------------------
start_registry "$WORK/registry" || exit 1
for d in mc ac ac-store cold run; do bench_wipe "$WORK/$d"; done
mkdir -p "$WORK/mc" "$WORK/ac" "$WORK/ac-store" "$RES"
. "$(dirname "$0")/fleet-steps.sh"

printf '%s\n' step program version builder key cold_s cold_run \
  mc_restored mc_down mc_pull_s mc_build_s mc_push_s mc_up mc_base mc_run mc_reused \
  ac_restored ac_down ac_restore_s ac_build_s ac_save_s ac_up ac_run ac_reused | paste -s - > "$RES/builds.tsv"
T0=$(bench_now)
declare -A COLD=()
for i in $(seq 0 $((N-1))); do
  p=${PROG[$i]} v=${VER[$i]} b=${BLD[$i]}
  s=$(src_of "$p" "$v")
  log "build $((i+1))/$N: $p@$v on $b"
  if [ "${FLEET_COLD:-1}" != 0 ] && [ -z "${COLD[$p@$v]:-}" ]; then COLD[$p@$v]=$(cold_build "$s" "${PKG[$i]}"); cold=${COLD[$p@$v]}; else cold=$'-\t-'; fi
  mc=$(mc_build "$s" "${PKG[$i]}" "$WORK/mc/$b" "$HOST/fleet/$(scope_of "$p")")
  key=$(cut -f1 <<<"$mc")
  [ "$key" = "$PREFIX${SUM[$i]}" ] || { echo "melcache expanded the key to $key, expected $PREFIX${SUM[$i]}" >&2; exit 1; }
  ac=$(ac_build "$s" "${PKG[$i]}" "$WORK/ac/$b" "$WORK/ac-store/$(scope_of "$p")" "$key")
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' $((i+1)) "$p" "$v" "$b" "$key" "$cold" "$(cut -f2- <<<"$mc")" "$ac" >> "$RES/builds.tsv"
done
echo "$(bench_since "$T0")" > "$RES/seconds"

# --- storage ---------------------------------------------------------------------
log "storage: every tag, then melcache gc --keep-last 1 and the registry's garbage-collect"
{
  printf 'registry_all\t%s\n' "$(du -sb "$WORK/registry/storage" | cut -f1)"
  for p in $(for q in "${PROG[@]}"; do scope_of "$q"; done | sort -u); do "$MC" gc -q --keep-last 1 "$HOST/fleet/$p" >&2; done
  registry_collect "$WORK/registry"
  printf 'registry_gc\t%s\n' "$(du -sb "$WORK/registry/storage" | cut -f1)"
  printf 'model_all\t%s\n' "$(du -sb "$WORK/ac-store" | cut -f1)"
  printf 'model_newest\t%s\n' "$(for d in "$WORK"/ac-store/*/; do stat -c %s "$d$(tail -1 "$d/order").tar.zst"; done | awk '{s+=$1} END {print s+0}')"
} > "$RES/storage.tsv"
{
  echo "date	$(date -u +%FT%TZ)"
  echo "commit	$(git -C "$REPO_ROOT" rev-parse --short HEAD)$(git -C "$REPO_ROOT" diff --quiet HEAD -- . || echo +dirty)"
  echo "go	$(go env GOVERSION)"
  echo "cores	$(nproc)"
  echo "load	$(cut -d' ' -f1-3 /proc/loadavg)"
  echo "builds	$N"
  echo "scope	$SCOPE"
  echo "push_restore_keys	$([ ${#PUSH_RK[@]} -gt 0 ] && echo yes || echo no)"
} > "$RES/run.tsv"
"$(dirname "$0")/fleet-summary.sh" "$RES" | tee "$RES/summary.md"
