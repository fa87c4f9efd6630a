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
