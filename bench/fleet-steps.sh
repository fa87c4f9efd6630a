# The steps of one fleet build (bench/fleet.sh sources this after setup; it needs WORK, MC,
# GOMINOR, KEY, RESTORE, PREFIX and PUSH_RK). Each step prints its tab-separated fields on
# stdout and logs on stderr.

# short_key TAG: the {hash:go.sum} part of a key, to keep tables narrow.
short_key() { echo "${1#"$PREFIX"}"; }

# go_build DIR SRC PKG: marks DIR, then times `go build -trimpath` of PKG in a fresh copy of SRC
# (a build under -mod=mod may rewrite go.mod or go.sum; the key is the pristine go.sum's, as a CI
# keys on the committed one) with DIR's caches. Prints seconds, compile actions run, reused.
go_build() {
  local dir=$1 src=$2 pkg=$3 t0 s
  bench_wipe "$WORK/run"; cp -r "$src" "$WORK/run"
  "$MC" mark -q --dir "$dir" >/dev/null
  sync
  t0=$(bench_now)
  (cd "$WORK/run" && GOMODCACHE=$dir/gomodcache GOCACHE=$dir/gocache go build -trimpath -o "$WORK/run.out" "$pkg") >&2 \
    || { echo "build of $pkg in $src with $dir failed" >&2; return 1; }
  s=$(bench_since "$t0")
  cmp -s "$src/go.sum" "$WORK/run/go.sum" || log "note: the build rewrote go.sum of $src (the key uses the committed one)"
  "$MC" status --json --dir "$dir" | jq -r --arg s "$s" '[$s, .lastBuild.compileActions.run, .lastBuild.compileActions.reused] | @tsv'
}

# cold_build SRC PKG: the same build into an empty cache dir. Prints seconds, compile actions run.
cold_build() {
  local d=$WORK/cold r
  bench_wipe "$d"
  "$MC" prepare -q --dir "$d" >/dev/null
  r=$(go_build "$d" "$1" "$2")
  bench_wipe "$d"
  cut -f1,2 <<<"$r"
}

# mc_json FILE: bytes a push or pull moved, data layers and metadata (manifest, config, index).
mc_json_bytes() { jq '(.dataBytes // 0) + (.metadataBytes // 0)' "$1"; }

# mc_build SRC PKG DIR REF: melcache pull (restore-keys, merge), build, push under the key.
# Prints key, restored (exact | prefix:HASH | miss), down bytes, pull s, build s, push s, up
# bytes, what the push was a delta of (its rule, or none), compile actions run, reused. Runs
# melcache in SRC, where {hash:go.sum} finds go.sum.
mc_build() {
  local src=$1 pkg=$2 dir=$3 ref=$4 t0 ps restored down b pu up key base
  [ -d "$dir" ] || "$MC" prepare -q --dir "$dir" >/dev/null
  sync
  t0=$(bench_now)
  (cd "$src" && "$MC" pull --json --missing-ok --dir "$dir" --go "$GOMINOR" --key "$KEY" --restore-keys "$RESTORE" "$ref") \
    >"$WORK/pull.json" 2>"$WORK/pull.err" || { cat "$WORK/pull.err" >&2; echo "melcache pull $ref failed" >&2; return 1; }
  ps=$(bench_since "$t0")
  restored=$(jq -r --arg p "$PREFIX" 'if .missing then "miss" elif .resolved == "tag" then "exact" else "prefix:" + (.tag | ltrimstr($p)) end' "$WORK/pull.json")
  down=$(mc_json_bytes "$WORK/pull.json")
  b=$(go_build "$dir" "$src" "$pkg")
  sync
  t0=$(bench_now)
  (cd "$src" && "$MC" push --json --dir "$dir" --go "$GOMINOR" --key "$KEY" "${PUSH_RK[@]}" "$ref") \
    >"$WORK/push.json" 2>"$WORK/push.err" || { cat "$WORK/push.err" >&2; echo "melcache push $ref failed" >&2; return 1; }
  pu=$(bench_since "$t0")
  up=$(mc_json_bytes "$WORK/push.json")
  key=$(jq -r .tag "$WORK/push.json")
  # baseRule is push's (issue 13); before it, a push with a base says only which.
  base=$(jq -r 'if .unchanged then "unchanged" else (.baseRule // (if .base then "base" else "none" end)) end | gsub("[\t ]"; "_")' "$WORK/push.json")
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$key" "$restored" "$down" "$ps" "$(cut -f1 <<<"$b")" "$pu" "$up" "$base" "$(cut -f2 <<<"$b")" "$(cut -f3 <<<"$b")"
}

# ac_build SRC PKG DIR STORE KEY: the actions/cache model. STORE holds one immutable archive per
# key and, in STORE/order, the keys in the order they were saved. Prints restored, down bytes,
# restore s, build s, save s, up bytes, compile actions run, reused.
ac_build() {
  local src=$1 pkg=$2 dir=$3 store=$4 key=$5 from='' restored=miss down=0 rs=0 ss=0 up=0 t0 b
  # Every model build starts from an empty dir, as a job on an ephemeral
  # runner does: the archive it saves then holds this program's caches
  # only. A persistent dir would carry other programs' files into every
  # archive and inflate the model's bytes in melcache's favour.
  bench_wipe "$dir"
  "$MC" prepare -q --dir "$dir" >/dev/null
  mkdir -p "$store"; touch "$store/order"
  if [ -e "$store/$key.tar.zst" ]; then
    from=$key restored=exact
  else
    from=$(awk -v p="$PREFIX" 'index($0, p) == 1' "$store/order" | tail -1)
    [ -z "$from" ] || restored=prefix:$(short_key "$from")
  fi
  if [ -n "$from" ]; then
    sync
    t0=$(bench_now)
    zstd -q -dc "$store/$from.tar.zst" | tar -C "$dir" -xf -
    rs=$(bench_since "$t0")
    down=$(stat -c %s "$store/$from.tar.zst")
  fi
  b=$(go_build "$dir" "$src" "$pkg")
  if [ ! -e "$store/$key.tar.zst" ]; then
    sync
    t0=$(bench_now)
    tar -C "$dir" -cf - gomodcache gocache | zstd -q -1 -T0 -o "$store/$key.tar.zst.part"
    mv "$store/$key.tar.zst.part" "$store/$key.tar.zst"
    ss=$(bench_since "$t0")
    up=$(stat -c %s "$store/$key.tar.zst")
    echo "$key" >> "$store/order"
  fi
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$restored" "$down" "$rs" "$(cut -f1 <<<"$b")" "$ss" "$up" "$(cut -f2 <<<"$b")" "$(cut -f3 <<<"$b")"
}
