#!/usr/bin/env bash
# Gateway vs nginx over TLS with the same certificate, all in one run:
#   1. keep-alive POST /distributed/read, wrk -t1 -c50, vs nginx `return 200` (issue #2);
#   2. a full TLS handshake per request (Connection: close; nginx session cache and tickets off, and
#      the gateway has no resumption), wrk -t1 -c50, vs nginx (issue #2);
#   3. keep-alive POST /config with 20 sources and 200 queries merged (8 of osquery's shipped packs
#      among them), vs /distributed/read on the same gateway (issue #4);
#   4. logger ingest: 64 KiB osquery result bodies (each one different) over keep-alive TLS into the
#      spool, requests per server CPU second, vs nginx `return 200` with the same bodies (issue #3)
#      and vs nginx `proxy_pass` of them to a plain-HTTP upstream (what is deployed in front of a
#      backend today; the upstream, another nginx, runs on the client's core and is not counted);
#   5. full handshakes (one distributed read each) per server CPU second with 0, 5k, 10k and 18k idle
#      TLS connections open, as a fleet of osquery 5.23 agents leaves them (fleet-sim), vs nginx;
#   6. hosts per server core at osquery's defaults (fleet-sim, FLEET_HOSTS hosts), vs nginx answering
#      canned bodies;
#   7. in front of a backend (a second gateway in upstream mode, the backend a plain-HTTP nginx with
#      canned answers): keep-alive distributed reads passed through, and 64 KiB logger bodies with
#      the upstream sink (acknowledged once spooled, re-posted after), per CPU second of front plus
#      backend, vs nginx proxy_pass to the same backend.
# Servers are pinned to core 0 and wrk to core 1. Prints requests/s and the ratios.
# Needs: a release build, wrk, nginx, curl, taskset (util-linux). Rerun: `make bench`.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10s}
BIN=${BIN:-.build/release/osquery-gateway}
for tool in wrk nginx curl taskset; do
    command -v $tool >/dev/null || { echo "installing wrk nginx-light"; apt-get install -y -qq wrk nginx-light >/dev/null; break; }
done
[ -x "$BIN" ] && [ -x .build/release/fleet-sim ] || make release
SIM=${SIM:-.build/release/fleet-sim}
IDLE_LEVELS=${IDLE_LEVELS:-0 5000 10000 18000}

# Thousands of idle connections from one address use up ephemeral ports, and then every connect()
# searches longer for a free one: a client-side kernel cost that would show as a slower server.
if [ "$(awk '{print $1}' /proc/sys/net/ipv4/ip_local_port_range)" -gt 1024 ]; then
    sysctl -qw net.ipv4.ip_local_port_range="1024 65535" 2>/dev/null ||
        echo "warning: cannot widen net.ipv4.ip_local_port_range; rows with 10k+ idle connections measure the client's port search too"
fi

WORK=$(mktemp -d /tmp/gw-bench.XXXXXX)
GW_PORT=18443
NGINX_PORT=18444
GWU_PORT=18447
PROXY_PORT=18445
UPSTREAM_PORT=18446
cleanup() {
    [ -n "${GW_PID:-}" ] && kill "$GW_PID" 2>/dev/null || true
    [ -n "${GWU_PID:-}" ] && kill "$GWU_PID" 2>/dev/null || true
    [ -f "$WORK/nginx/nginx.pid" ] && kill "$(cat "$WORK/nginx/nginx.pid")" 2>/dev/null || true
    [ -f "$WORK/upstream/nginx.pid" ] && kill "$(cat "$WORK/upstream/nginx.pid")" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

"$BIN" init --dir "$WORK/gw" --hostname localhost --listen 127.0.0.1:$GW_PORT >/dev/null
# 20 config sources, 200 queries: 8 shipped packs (172 queries) and 12 files with 28 scheduled
# queries, some with clashing names so the merge renames them.
python3 - "$WORK/gw" "${FIXTURES:-Tests/GatewayTests/Fixtures/osquery-packs}" <<'PY'
import json, os, shutil, sys
out, packs = sys.argv[1], sys.argv[2]
lines = []
chosen = ["hardware-monitoring", "incident-response", "it-compliance", "osquery-monitoring",
          "unwanted-chrome-extensions", "vuln-management", "windows-attacks", "windows-hardening"]
for name in chosen:
    shutil.copy(os.path.join(packs, name + ".conf"), os.path.join(out, name + ".conf"))
    with open(os.path.join(out, "pack-" + name + ".json"), "w") as f:
        json.dump({"packs": {name: name + ".conf"}}, f)
    lines.append("    - { name: %s, file: pack-%s.json }" % (name, name))
for i in range(12):
    count = 3 if i < 4 else 2
    schedule = {"q%d" % j if i % 3 else "shared%d" % j: {"query": "SELECT %d AS source, %d AS n;" % (i, j), "interval": 300 + j}
                for j in range(count)}
    with open(os.path.join(out, "team%02d.json" % i), "w") as f:
        json.dump({"schedule": schedule, "options": {"team%02d" % i: True}}, f)
    lines.append("    - { name: team%02d, file: team%02d.json }" % (i, i))
open(os.path.join(out, "sources.yaml"), "w").write("\n".join(lines) + "\n")
PY
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
limits:
  idle_timeout: 10m                  # idle connections stay for the idle-connection rows
spool:
  max_size: 50GiB
sinks:
  # Results stay in the spool: the sink takes status lines only, so the disk sees one copy.
  - { name: files, type: file, directory: logs, match: { log_type: [status] } }
agent_config:
  sources:
$(cat "$WORK/gw/sources.yaml")
YAML
taskset -c 0 "$BIN" serve --config "$WORK/gw/bench.yaml" >"$WORK/gw.log" 2>&1 &
GW_PID=$!

mkdir -p "$WORK/nginx/logs"
cat > "$WORK/nginx/nginx.conf" <<NGINX
worker_processes 1;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/logs/error.log warn;
worker_rlimit_nofile 20000;
events { worker_connections 20000; }
http {
  access_log off;
  keepalive_requests 10000000;
  keepalive_timeout 600s;
  client_header_timeout 600s;
  server {
    listen 127.0.0.1:$NGINX_PORT ssl;
    ssl_certificate $WORK/gw/tls/server.pem;
    ssl_certificate_key $WORK/gw/tls/server.key;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_cache off;
    ssl_session_tickets off;
    client_max_body_size 1m;
    client_body_buffer_size 128k;
    default_type application/json;
    # Canned answers for every endpoint, so fleet-sim hosts can run against nginx too.
    location = /enroll { return 200 '{"node_key":"canned","node_invalid":false}'; }
    location = /config { return 200 '{"options":{"logger_tls_period":4}}'; }
    location = /logger { return 200 '{}'; }
    location = /distributed/write { return 200 '{}'; }
    location / { return 200 '{"queries":{}}'; }
  }
  # What fronts a backend today: TLS terminated, bodies passed to a plain-HTTP upstream over
  # keep-alive connections.
  upstream backend { server 127.0.0.1:$UPSTREAM_PORT; keepalive 64; }
  server {
    listen 127.0.0.1:$PROXY_PORT ssl;
    ssl_certificate $WORK/gw/tls/server.pem;
    ssl_certificate_key $WORK/gw/tls/server.key;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_cache off;
    ssl_session_tickets off;
    client_max_body_size 1m;
    client_body_buffer_size 128k;
    location / { proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
NGINX
taskset -c 0 nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf"
mkdir -p "$WORK/upstream/logs"
cat > "$WORK/upstream/nginx.conf" <<NGINX
worker_processes 1;
pid $WORK/upstream/nginx.pid;
error_log $WORK/upstream/logs/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  keepalive_requests 10000000;
  server {
    listen 127.0.0.1:$UPSTREAM_PORT;
    client_max_body_size 1m;
    client_body_buffer_size 128k;
    default_type application/json;
    # A backend's canned answers: the gateway in upstream mode enrolls through it (row 7).
    location = /enroll { return 200 '{"node_key":"canned","node_invalid":false}'; }
    location = /config { return 200 '{"options":{"logger_tls_period":4}}'; }
    location = /distributed/read { return 200 '{"queries":{}}'; }
    location / { return 200 '{}'; }
  }
}
NGINX
taskset -c 1 nginx -p "$WORK/upstream" -c "$WORK/upstream/nginx.conf"

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
CONFIG_BYTES=$(curl -s --cacert "$WORK/gw/tls/ca.pem" "https://localhost:$GW_PORT/config" -d "{\"node_key\":\"$KEY\"}" | tee "$WORK/config.json" | wc -c)
QUERIES=$(python3 -c "import json,sys; c=json.load(open(sys.argv[1])); print(len(c['schedule']) + sum(len(p['queries']) for p in c['packs'].values()))" "$WORK/config.json")
echo "config: $CONFIG_BYTES bytes, $QUERIES queries"

TICKS=$(getconf CLK_TCK)
cpu_of() { for pid in "$@"; do awk '{print $14 + $15}' "/proc/$pid/stat"; done | awk -v t="$TICKS" '{s += $1} END {printf "%.3f", s / t}'; }
NGINX_MASTER=$(cat "$WORK/nginx/nginx.pid")
# ROWS picks what runs: basic (rows 1-4), idle (5), fleet (6), upstream (7); default all.
ROWS=${ROWS:-basic idle fleet upstream}
rps() {  # url [extra wrk args]
    local url=$1; shift
    taskset -c 1 wrk -t1 -c50 -d"$DURATION" -s "$WORK/read.lua" "$@" "$url" | awk '/Requests\/sec/ {print $2}'
}
if [[ " $ROWS " == *" basic "* ]]; then
printf '%-34s %12s %12s %8s\n' "measurement" "gateway" "nginx" "ratio"
for mode in keepalive handshake; do
    args=()
    [ $mode = handshake ] && args=(-H "Connection: close")
    g=$(rps "https://localhost:$GW_PORT/distributed/read" "${args[@]}")
    n=$(rps "https://localhost:$NGINX_PORT/distributed/read" "${args[@]}")
    label="/distributed/read keep-alive req/s"
    [ $mode = handshake ] && label="full TLS handshakes/s (close)"
    printf '%-34s %12s %12s %8s\n' "$label" "$g" "$n" "$(awk -v g="$g" -v n="$n" 'BEGIN {printf "%.2fx", g/n}')"
    [ $mode = keepalive ] && READ=$g
done
c=$(rps "https://localhost:$GW_PORT/config")
printf '%-34s %12s %12s %8s\n' "/config keep-alive req/s" "$c" "(vs read)" "$(awk -v c="$c" -v r="$READ" 'BEGIN {printf "%.2fx", c/r}')"
z=$(rps "https://localhost:$GW_PORT/config" -H "Accept-Encoding: gzip")
printf '%-34s %12s %12s %8s\n' "/config gzip keep-alive req/s" "$z" "(vs read)" "$(awk -v c="$z" -v r="$READ" 'BEGIN {printf "%.2fx", c/r}')"

# 4. Logger ingest: 64 KiB result bodies, each made unique by a counter (the gateway stores an exact
# resend only once, which would flatter it).
python3 - "$WORK/rest.json" <<'PY'
import json, sys
items = []
i = 0
while len(json.dumps(items)) < 64 * 1024 - 200:
    items.append({"name": "pack_bench_processes", "hostIdentifier": "bench-host", "calendarTime": "Tue Mar  3 14:05:06 2026 UTC",
                  "unixTime": 1772546706, "epoch": 0, "counter": i, "numerics": False,
                  "columns": {"pid": str(1000 + i), "path": "/usr/bin/worker%d" % i, "cmdline": "worker --id %d" % i, "uid": "0"},
                  "action": "added"})
    i += 1
open(sys.argv[1], "w").write(",".join(json.dumps(x, separators=(",", ":")) for x in items) + "]}")
PY
cat > "$WORK/ingest.lua" <<LUA
local f = io.open("$WORK/rest.json", "r")
local rest = f:read("*a")
f:close()
local prefix = '{"node_key":"$KEY","log_type":"result","data":[{"name":"pack_bench_marker","unique":'
local counter = 0
request = function()
  counter = counter + 1
  return wrk.format("POST", "/logger", {["Content-Type"] = "application/json"}, prefix .. counter .. "}," .. rest)
end
LUA
NGINX_PIDS="$NGINX_MASTER $(pgrep -P "$NGINX_MASTER" | tr '\n' ' ')"
ingest() {  # port pids...
    local port=$1; shift
    local before=$(cpu_of "$@")
    local out=$(taskset -c 1 wrk -t1 -c50 -d"$DURATION" -s "$WORK/ingest.lua" "https://localhost:$port/logger")
    local after=$(cpu_of "$@")
    local requests=$(echo "$out" | awk '/requests in/ {print $1}')
    local failed=$(echo "$out" | awk '/Non-2xx/ {print $NF}')
    echo "$requests $(awk -v a="$after" -v b="$before" 'BEGIN {printf "%.3f", a - b}') ${failed:-0}"
}
read -r greq gcpu gfail <<<"$(ingest $GW_PORT $GW_PID)"
read -r nreq ncpu nfail <<<"$(ingest $NGINX_PORT $NGINX_PIDS)"
read -r preq pcpu pfail <<<"$(ingest $PROXY_PORT $NGINX_PIDS)"
gper=$(awk -v r="$greq" -v c="$gcpu" 'BEGIN {printf "%.0f", r / c}')
nper=$(awk -v r="$nreq" -v c="$ncpu" 'BEGIN {printf "%.0f", r / c}')
pper=$(awk -v r="$preq" -v c="$pcpu" 'BEGIN {printf "%.0f", r / c}')
printf '%-34s %12s %12s %8s\n' "64KiB logger req per server CPU s" "$gper" "$nper" "$(awk -v g="$gper" -v n="$nper" 'BEGIN {printf "%.2fx", g/n}')"
printf '%-34s %12s %12s %8s\n' "  the same vs nginx proxy_pass" "$gper" "$pper" "$(awk -v g="$gper" -v n="$pper" 'BEGIN {printf "%.2fx", g/n}')"
echo "  (gateway: $greq requests, $gfail not 2xx, $gcpu CPU s; nginx: $nreq requests, $nfail not 2xx, $ncpu CPU s; proxy_pass: $preq requests, $pfail not 2xx, $pcpu CPU s)"
fi

# 5. Handshakes per server CPU second while idle TLS connections are open. One fleet-sim process
# holds the idle connections (a process here may hold at most 20,000 files), another runs the closed
# loop: connect, full handshake, one distributed read, close.
rss_of() { awk '/VmRSS/ {print $2 * 1024}' "/proc/$1/status"; }
open_files() { ls "/proc/$1/fd" | wc -l; }
handshakes_per_cpu() {  # port server-pid -> handshakes per server CPU second
    taskset -c 1 "$SIM" --mode handshakes --url "https://127.0.0.1:$1" --tls-hostname localhost --ca "$WORK/gw/tls/ca.pem" \
        --node-key "$KEY" --concurrency 50 --duration "$DURATION" --server-pid "$2" --json --quiet |
        python3 -c 'import json,sys; r=json.load(sys.stdin); print("%.0f" % (r["requests"]["ok"] / r["server"]["cpu_seconds"]))'
}
hold_idle() {  # port count server-pid -> pid of the holder, once the server has them open
    local before=$(open_files "$3")
    taskset -c 1 "$SIM" --url "https://127.0.0.1:$1" --tls-hostname localhost --ca "$WORK/gw/tls/ca.pem" \
        --secret-file "$WORK/gw/enroll_secret.txt" --hosts 0 --idle "$2" --idle-reopen --duration 3600s --quiet \
        >"$WORK/idle-$1.log" 2>&1 &
    local holder=$!
    for _ in $(seq 600); do [ "$(open_files "$3")" -ge $((before + $2 * 99 / 100)) ] && break; sleep 0.2; done
    echo "$holder"
}
NGINX_WORKER=$(pgrep -P "$NGINX_MASTER" | head -1)
if [[ " $ROWS " == *" idle "* ]]; then
echo
printf '%-34s %12s %12s %8s\n' "handshakes per server CPU s" "gateway" "nginx" "ratio"
for idle in $IDLE_LEVELS; do
    row=()
    for side in "$GW_PORT $GW_PID" "$NGINX_PORT $NGINX_WORKER"; do
        read -r port pid <<<"$side"
        rss0=$(rss_of "$pid")
        holder=""
        [ "$idle" -gt 0 ] && holder=$(hold_idle "$port" "$idle" "$pid")
        rss1=$(rss_of "$pid")
        row+=("$(handshakes_per_cpu "$port" "$pid")")
        [ "$idle" -gt 0 ] && row+=("$(awk -v a="$rss1" -v b="$rss0" -v n="$idle" 'BEGIN {printf "%.1f", (a - b) / n / 1024}')")
        [ -n "$holder" ] && { kill "$holder"; wait "$holder" 2>/dev/null || true; sleep 2; }
    done
    if [ "$idle" -gt 0 ]; then
        printf '%-34s %12s %12s %8s   (KiB per idle connection: gateway %s, nginx %s)\n' "with $idle idle connections" "${row[0]}" "${row[2]}" \
            "$(awk -v g="${row[0]}" -v n="${row[2]}" 'BEGIN {printf "%.2fx", g/n}')" "${row[1]}" "${row[3]}"
    else
        printf '%-34s %12s %12s %8s\n' "with no idle connections" "${row[0]}" "${row[1]}" "$(awk -v g="${row[0]}" -v n="${row[1]}" 'BEGIN {printf "%.2fx", g/n}')"
    fi
done

fi

# 6. Hosts per core at osquery's defaults: distributed read every 60 s, logger every 4 s with lines
# in a quarter of the periods, a new connection per request, one idle connection kept per host.
FLEET_HOSTS=${FLEET_HOSTS:-5000}
fleet() {  # port server-pid -> hosts per server core, p99 ms of distributed reads, kept up
    taskset -c 1 "$SIM" --url "https://127.0.0.1:$1" --tls-hostname localhost --ca "$WORK/gw/tls/ca.pem" \
        --secret-file "$WORK/gw/enroll_secret.txt" --hosts "$FLEET_HOSTS" --connections per-host --splay 30s \
        --distributed-interval 60 --logger-period 4 --log-share 0.25 --server-pid "$2" --json --quiet |
        python3 -c 'import json,sys; r=json.load(sys.stdin); s=r["steady"]; d=r["endpoints"].get("distributed_read",{}).get("latency",{})
print("%.0f %.1f %s" % (s.get("hosts_per_server_core") or 0, d.get("p99_ms") or 0, r["schedule"]["kept_up"]))'
}
if [[ " $ROWS " == *" fleet "* ]]; then
read -r ghosts gp99 gkept <<<"$(fleet $GW_PORT $GW_PID)"
read -r nhosts np99 nkept <<<"$(fleet $NGINX_PORT $NGINX_WORKER)"
echo
printf '%-34s %12s %12s %8s\n' "hosts per server core ($FLEET_HOSTS)" "$ghosts" "$nhosts" "$(awk -v g="$ghosts" -v n="$nhosts" 'BEGIN {printf "%.2fx", g/n}')"
echo "  (distributed read p99: gateway $gp99 ms, nginx $np99 ms; client kept up: gateway $gkept, nginx $nkept)"
fi

# 7. In front of a backend: the same requests through a gateway in upstream mode and through nginx
# proxy_pass, both to the plain-HTTP nginx backend; CPU of front and backend together.
if [[ " $ROWS " == *" upstream "* ]]; then
[ -f "$WORK/ingest.lua" ] || { echo "row 7 (upstream) uses the logger bodies of row 4: run it with ROWS=\"basic upstream\""; exit 1; }
NGINX_PIDS="$NGINX_MASTER $(pgrep -P "$NGINX_MASTER" | tr '\n' ' ')"
UPSTREAM_MASTER=$(cat "$WORK/upstream/nginx.pid")
UPSTREAM_PIDS="$UPSTREAM_MASTER $(pgrep -P "$UPSTREAM_MASTER" | tr '\n' ' ')"
mkdir -p "$WORK/gwu"
cp "$WORK/gw/enroll_secret.txt" "$WORK/gwu/"
cat > "$WORK/gwu/upstream.yaml" <<YAML
listen: 127.0.0.1:$GWU_PORT
data_dir: .
log_level: warning
tls:
  certificate: $WORK/gw/tls/server.pem
  private_key: $WORK/gw/tls/server.key
  client_certificates: none
enrollment:
  secrets:
    - { name: default, file: enroll_secret.txt }
upstream:
  url: http://127.0.0.1:$UPSTREAM_PORT
  pool: { size: 16, idle_timeout: 10s }
spool:
  max_size: 50GiB
sinks:
  - { name: backend, type: upstream }
agent_config:
  sources:
    - { name: backend, upstream: true }
YAML
taskset -c 0 "$BIN" serve --config "$WORK/gwu/upstream.yaml" >"$WORK/gwu.log" 2>&1 &
GWU_PID=$!
for _ in $(seq 50); do curl -s -o /dev/null --cacert "$WORK/gw/tls/ca.pem" "https://localhost:$GWU_PORT/" && break; sleep 0.2; done
UKEY=$(curl -s --cacert "$WORK/gw/tls/ca.pem" "https://localhost:$GWU_PORT/enroll" \
    -d "{\"enroll_secret\":\"$SECRET\",\"host_identifier\":\"bench\",\"platform_type\":\"9\",\"host_details\":{}}" |
    sed -E 's/.*"node_key":"([^"]+)".*/\1/')
echo "upstream check: $(curl -s --cacert "$WORK/gw/tls/ca.pem" "https://localhost:$GWU_PORT/distributed/read" -d "{\"node_key\":\"$UKEY\"}")"
sed "s/$KEY/$UKEY/" "$WORK/read.lua" > "$WORK/read-up.lua"
sed "s/$KEY/$UKEY/" "$WORK/ingest.lua" > "$WORK/ingest-up.lua"
front() {  # script port settle-seconds pids... -> requests cpu-seconds non-2xx
    local script=$1 port=$2 settle=$3; shift 3
    local before=$(cpu_of "$@")
    local out=$(taskset -c 1 wrk -t1 -c50 -d"$DURATION" -s "$script" "https://localhost:$port/$( [[ $script == *ingest* ]] && echo logger || echo distributed/read)")
    sleep "$settle"
    local after=$(cpu_of "$@")
    echo "$(echo "$out" | awk '/requests in/ {print $1}') $(awk -v a="$after" -v b="$before" 'BEGIN {printf "%.3f", a - b}') $(echo "$out" | awk '/Non-2xx/ {print $NF}')"
}
echo
printf '%-34s %12s %12s %8s\n' "front + backend, per CPU s" "gateway" "proxy_pass" "ratio"
read -r gr gc gf <<<"$(front "$WORK/read-up.lua" $GWU_PORT 0 $GWU_PID $UPSTREAM_PIDS)"
read -r nr nc nf <<<"$(front "$WORK/read.lua" $PROXY_PORT 0 $NGINX_PIDS $UPSTREAM_PIDS)"
printf '%-34s %12s %12s %8s\n' "distributed/read passed through" "$(awk -v r="$gr" -v c="$gc" 'BEGIN {printf "%.0f", r/c}')" \
    "$(awk -v r="$nr" -v c="$nc" 'BEGIN {printf "%.0f", r/c}')" "$(awk -v a="$gr" -v b="$gc" -v c="$nr" -v d="$nc" 'BEGIN {printf "%.2fx", (a/b)/(c/d)}')"
# The upstream sink re-posts after the answer: 10 s more of CPU are counted for the catch-up.
read -r gr2 gc2 gf2 <<<"$(front "$WORK/ingest-up.lua" $GWU_PORT 10 $GWU_PID $UPSTREAM_PIDS)"
read -r nr2 nc2 nf2 <<<"$(front "$WORK/ingest-up.lua" $PROXY_PORT 0 $NGINX_PIDS $UPSTREAM_PIDS)"
printf '%-34s %12s %12s %8s\n' "64KiB logger, upstream sink" "$(awk -v r="$gr2" -v c="$gc2" 'BEGIN {printf "%.0f", r/c}')" \
    "$(awk -v r="$nr2" -v c="$nc2" 'BEGIN {printf "%.0f", r/c}')" "$(awk -v a="$gr2" -v b="$gc2" -v c="$nr2" -v d="$nc2" 'BEGIN {printf "%.2fx", (a/b)/(c/d)}')"
echo "  (reads: gateway $gr in $gc CPU s, ${gf:-0} not 2xx; proxy_pass $nr in $nc CPU s, ${nf:-0} not 2xx)"
echo "  (logger: gateway $gr2 in $gc2 CPU s, ${gf2:-0} not 2xx; proxy_pass $nr2 in $nc2 CPU s, ${nf2:-0} not 2xx)"
echo "  (backend posts received by the upstream sink's target are not checked here; see Tests/GatewayTests/Upstream)"
fi
