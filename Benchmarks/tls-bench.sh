#!/usr/bin/env bash
# Gateway vs nginx over TLS with the same certificate (issue #2's measurement):
#   1. keep-alive POST /distributed/read, wrk -t1 -c50;
#   2. a full TLS handshake per request (Connection: close; nginx session cache and tickets off, and
#      the gateway has no resumption), wrk -t1 -c50.
# Servers are pinned to core 0 and wrk to core 1. Prints requests/s and the gateway/nginx ratio.
# Needs: a release build, wrk, nginx, curl, taskset (util-linux). Rerun: `make bench`.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10s}
BIN=.build/release/osquery-gateway
for tool in wrk nginx curl taskset; do
    command -v $tool >/dev/null || { echo "installing wrk nginx-light"; apt-get install -y -qq wrk nginx-light >/dev/null; break; }
done
[ -x "$BIN" ] || swift build -c release

WORK=$(mktemp -d /tmp/gw-bench.XXXXXX)
GW_PORT=18443
NGINX_PORT=18444
cleanup() {
    [ -n "${GW_PID:-}" ] && kill "$GW_PID" 2>/dev/null || true
    [ -f "$WORK/nginx/nginx.pid" ] && kill "$(cat "$WORK/nginx/nginx.pid")" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

"$BIN" init --dir "$WORK/gw" --hostname localhost --listen 127.0.0.1:$GW_PORT >/dev/null
cat > "$WORK/gw/bench.yaml" <<YAML
listen: 127.0.0.1:$GW_PORT
data_dir: .
log_level: warning
tls:
  certificate: tls/server.pem
  private_key: tls/server.key
  client_certificates: none
enrollment:
  secrets:
    - { name: default, file: enroll_secret.txt }
agent_config:
  sources:
    - { name: base, file: osquery.conf }
YAML
taskset -c 0 "$BIN" serve --config "$WORK/gw/bench.yaml" >"$WORK/gw.log" 2>&1 &
GW_PID=$!

mkdir -p "$WORK/nginx/logs"
cat > "$WORK/nginx/nginx.conf" <<NGINX
worker_processes 1;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 10000000;
  server {
    listen 127.0.0.1:$NGINX_PORT ssl;
    ssl_certificate $WORK/gw/tls/server.pem;
    ssl_certificate_key $WORK/gw/tls/server.key;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_cache off;
    ssl_session_tickets off;
    location / { default_type application/json; return 200 '{"queries":{}}'; }
  }
}
NGINX
taskset -c 0 nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf"

for _ in $(seq 50); do curl -s -o /dev/null --cacert "$WORK/gw/tls/ca.pem" "https://localhost:$GW_PORT/" && break; sleep 0.2; done
SECRET=$(cat "$WORK/gw/enroll_secret.txt")
KEY=$(curl -s --cacert "$WORK/gw/tls/ca.pem" "https://localhost:$GW_PORT/enroll" \
    -d "{\"enroll_secret\":\"$SECRET\",\"host_identifier\":\"bench\",\"platform_type\":\"9\",\"host_details\":{}}" |
    sed -E 's/.*"node_key":"([0-9a-f]+)".*/\1/')
cat > "$WORK/read.lua" <<LUA
wrk.method = "POST"
wrk.body = '{"node_key":"$KEY"}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["User-Agent"] = "osquery/5.23.1"
LUA
echo "check: $(curl -s --cacert "$WORK/gw/tls/ca.pem" "https://localhost:$GW_PORT/distributed/read" -d "{\"node_key\":\"$KEY\"}")"

rps() {  # url [extra wrk args]
    local url=$1; shift
    taskset -c 1 wrk -t1 -c50 -d"$DURATION" -s "$WORK/read.lua" "$@" "$url" | awk '/Requests\/sec/ {print $2}'
}
printf '%-34s %12s %12s %8s\n' "measurement" "gateway" "nginx" "ratio"
for mode in keepalive handshake; do
    args=()
    [ $mode = handshake ] && args=(-H "Connection: close")
    g=$(rps "https://localhost:$GW_PORT/distributed/read" "${args[@]}")
    n=$(rps "https://localhost:$NGINX_PORT/distributed/read" "${args[@]}")
    label="/distributed/read keep-alive req/s"
    [ $mode = handshake ] && label="full TLS handshakes/s (close)"
    printf '%-34s %12s %12s %8s\n' "$label" "$g" "$n" "$(awk -v g="$g" -v n="$n" 'BEGIN {printf "%.2fx", g/n}')"
done
