# Shared by the bench/ scripts: source it, then call start_registry.

# start_registry DIR: Debian's docker-registry on a free loopback port with
# its storage under DIR (emptied first); sets HOST and REG_PID and stops the
# registry when the calling script exits.
start_registry() {
  local dir=$1 port
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  HOST=127.0.0.1:$port
  mkdir -p "$dir"
  cat > "$dir/config.yml" <<YAML
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: $dir/storage}, delete: {enabled: true}}
http: {addr: $HOST}
YAML
  rm -rf "$dir/storage"
  docker-registry serve "$dir/config.yml" >"$dir/log" 2>&1 &
  REG_PID=$!
  trap 'kill $REG_PID 2>/dev/null || true' EXIT
  for _ in $(seq 100); do curl -fs "http://$HOST/v2/" >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "docker-registry did not answer on $HOST (log: $dir/log)" >&2
  return 1
}

# stop_registry: stops the registry start_registry started (the EXIT trap
# then finds nothing to kill).
stop_registry() {
  kill "$REG_PID" 2>/dev/null || true
  wait "$REG_PID" 2>/dev/null || true
}

# registry_collect DIR: stops the registry and runs its garbage collector on
# the storage under DIR, so blobs no manifest references any more (after
# `melcache gc`, which only DELETEs manifests on a registry) leave the disk.
registry_collect() {
  stop_registry
  docker-registry garbage-collect --delete-untagged "$1/config.yml" >>"$1/log" 2>&1
}

# bench_wipe DIR: removes DIR, read-only module trees included.
bench_wipe() { chmod -R u+w "$1" 2>/dev/null || true; rm -rf "$1"; }

# bench_now: a wall-clock timestamp for bench_since.
bench_now() { date +%s.%N; }

# bench_since T0: seconds since bench_now returned T0, two decimals.
bench_since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN{printf "%.2f", b-a}'; }

# bench_median: the median of the numbers on stdin, one a line.
bench_median() { sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else printf "%.2f\n", (a[NR/2]+a[NR/2+1])/2}'; }

# bench_arch: melange's name for this machine's architecture, as {arch}.
bench_arch() { case $(go env GOARCH) in amd64) echo x86_64 ;; arm64) echo aarch64 ;; *) go env GOARCH ;; esac; }
