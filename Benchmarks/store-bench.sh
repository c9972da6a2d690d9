#!/usr/bin/env bash
# Node store and live-query figures (issue 11 item 3, issue 12 item 8), SQLite against PostgreSQL
# in one run, the gateway pinned to core 0 and wrk to core 1, per server CPU-second:
#   1. enrollments of new hosts (each a distinct host_identifier), wrk -t1 -c50;
#   2. keep-alive empty polls (POST /distributed/read from one node with nothing to run) with
#      NODES+ nodes enrolled and no campaign, then with 10 active campaigns that target every other
#      node (the campaign index is searched on every poll; goal: within 10% of none);
#   3. database round trips per 1,000 empty polls (PostgreSQL's own count of transactions in the
#      gateway's database while polling, and the 22 s of settling around it; goal: 0, the control
#      channel's SELECT 1 every 10 s aside).
# Warm-cache authentication is row 2 itself: the same polls against each store (goal: equal).
# Needs a release build, wrk, curl, taskset, python3, and POSTGRES_URL (scripts/with-postgres.sh,
# which `make bench-stores` uses).
#   4. two gateways on the PostgreSQL store, one per core, each polled by a wrk on the other core,
#      against one alone: polls per gateway CPU-second should hold (the wrk processes then share
#      the cores with the gateways, which costs switches but is not counted as gateway CPU).
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10s}
BIN=${BIN:-.build/release/osquery-gateway}
: "${POSTGRES_URL:?run under scripts/with-postgres.sh (make bench-stores)}"
for tool in wrk curl taskset; do
    command -v $tool >/dev/null || { apt-get install -y -qq wrk curl util-linux >/dev/null; break; }
done
[ -x "$BIN" ] || make release
BIN=$(realpath "$BIN")

WORK=$(mktemp -d /tmp/gw-store-bench.XXXXXX)
GW_PORT=18543
ADMIN_PORT=18544
cleanup() {
    [ -n "${GW_PID:-}" ] && kill "$GW_PID" 2>/dev/null || true
    pkill -f "serve --config bench.yaml" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

# CPU seconds (user + system) process $1 has used.
cpu() { awk -v hz="$(getconf CLK_TCK)" '{ printf "%.3f", ($14 + $15) / hz }' "/proc/$1/stat"; }
# Requests wrk completed, from its summary.
completed() { awk '/requests in/ { print $1 }' "$1"; }
# Transactions PostgreSQL counted in the benchmark's database so far. A backend reports its counts
# within 10 s of going idle (PostgreSQL 15), so each reading waits that long first: the enrollments
# just before must not be counted as the polls' round trips, nor the polls' ones missed.
transactions() {
    sleep 11
    psql -qtA "$POSTGRES_URL" -c "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = current_database()"
}

"$BIN" init --dir "$WORK/gw" --hostname localhost --listen 127.0.0.1:$GW_PORT >/dev/null
SECRET=$(cat "$WORK/gw/enroll_secret.txt")
TOKEN=$(cat "$WORK/gw/admin_token.txt")

cat > "$WORK/enroll.lua" <<LUA
local n = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  n = n + 1
  local body = string.format('{"enroll_secret":"$SECRET","host_identifier":"h-%d-%d","platform_type":"9","host_details":{"system_info":{"hostname":"h-%d"}}}', math.random(1, 1000000000), n, n)
  return wrk.format(nil, "/enroll", nil, body)
end
LUA

# Writes $1/bench.yaml: node store $2, agent port $3, admin port $4.
write_config() {
    cat > "$1/bench.yaml" <<YAML
listen: 127.0.0.1:$3
data_dir: .
log_level: warning
tls: { certificate: tls/server.pem, private_key: tls/server.key, client_certificates: none }
enrollment:
  secrets:
    - { name: default, file: enroll_secret.txt }
node_store: { $2 }
agent_config:
  sources:
    - { name: base, file: osquery.conf }
sinks:
  - { name: files, type: file, directory: logs }
admin: { listen: 127.0.0.1:$4, token_file: admin_token.txt }
YAML
}

# Starts the gateway of folder $1 on core $2 (admin port $3); prints its PID.
start_gateway() {
    # Its own output to a file, and nothing of the caller's $(...) pipe kept open by the subshell.
    (cd "$1" && exec taskset -c "$2" "$BIN" serve --config bench.yaml >"$1/serve.log" 2>&1) </dev/null >/dev/null 2>&1 &
    for _ in $(seq 100); do curl -skf "http://127.0.0.1:$3/health" >/dev/null 2>&1 && break; sleep 0.1; done
    pgrep -f "serve --config bench.yaml" | while read -r pid; do
        [ "$(readlink "/proc/$pid/cwd")" = "$1" ] && echo "$pid"
    done | head -1
}

# Enrolls host $2 through agent port $1; prints the node key.
enroll_one() {
    curl -sk -X POST "https://127.0.0.1:$1/enroll" -H 'Content-Type: application/json' \
        -d "{\"enroll_secret\":\"$SECRET\",\"host_identifier\":\"$2\",\"platform_type\":\"9\"}" |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["node_key"])'
}

# A wrk script polling with node key $2, written to $1.
poll_script() {
    cat > "$1" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"node_key":"$2"}'
LUA
}

# Runs one store's rows; $1: sqlite or postgres.
run_store() {
    local store=$1
    rm -rf "$WORK/gw/nodes.sqlite"* "$WORK/gw/campaigns.sqlite"* "$WORK/gw/spool" "$WORK/gw/logs"
    local node_store="sqlite: nodes.sqlite"
    if [ "$store" = postgres ]; then
        psql -qtA "$POSTGRES_URL" -c "DROP TABLE IF EXISTS gateway_nodes, gateway_campaigns, gateway_campaign_nodes, gateway_campaign_results, gateway_carves, gateway_carve_blocks, gateway_migrations" >/dev/null 2>&1
        node_store="postgres: \"$POSTGRES_URL\""
    fi
    write_config "$WORK/gw" "$node_store" $GW_PORT $ADMIN_PORT
    GW_PID=$(start_gateway "$WORK/gw" 0 $ADMIN_PORT)
    [ -n "$GW_PID" ] || { echo "the gateway did not start ($store):"; cat "$WORK/gw/serve.log"; exit 1; }

    local before after
    before=$(cpu "$GW_PID")
    taskset -c 1 wrk -t1 -c50 -d"$DURATION" -s "$WORK/enroll.lua" "https://127.0.0.1:$GW_PORT" >"$WORK/enroll-$store.txt"
    after=$(cpu "$GW_PID")
    local enrolled
    enrolled=$(curl -sf -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$ADMIN_PORT/api/nodes" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["nodes"]))')
    ENROLL[$store]=$(python3 -c "print(round($enrolled / max($after - $before, 0.001)))")
    NODES[$store]=$enrolled

    local key
    key=$(enroll_one $GW_PORT poller-1)
    poll_script "$WORK/poll.lua" "$key"
    body=$(curl -sk -X POST "https://127.0.0.1:$GW_PORT/distributed/read" -d "{\"node_key\":\"$key\"}")
    [ "$body" = '{"queries":{}}' ] || { echo "unexpected poll answer: $body"; exit 1; }

    for campaigns in 0 10; do
        if [ "$campaigns" = 10 ]; then
            for i in $(seq 10); do
                curl -sf -X POST -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
                    "http://127.0.0.1:$ADMIN_PORT/api/queries" -d "{\"sql\":\"SELECT $i;\",\"hosts\":[\"h-*\"],\"expires_in\":\"1h\"}" >/dev/null
            done
            body=$(curl -sk -X POST "https://127.0.0.1:$GW_PORT/distributed/read" -d "{\"node_key\":\"$key\"}")
            [ "$body" = '{"queries":{}}' ] || { echo "the poller has work: $body"; exit 1; }
        fi
        local xacts=0
        [ "$store" = postgres ] && xacts=$(transactions)
        before=$(cpu "$GW_PID")
        taskset -c 1 wrk -t1 -c50 -d"$DURATION" -s "$WORK/poll.lua" "https://127.0.0.1:$GW_PORT/distributed/read" >"$WORK/poll-$store-$campaigns.txt"
        after=$(cpu "$GW_PID")
        local polls
        polls=$(completed "$WORK/poll-$store-$campaigns.txt")
        POLL[$store-$campaigns]=$(python3 -c "print(round($polls / max($after - $before, 0.001)))")
        if [ "$store" = postgres ]; then
            TRIPS[$campaigns]=$(python3 -c "print(round(($(transactions) - $xacts) * 1000 / max($polls, 1), 3))")
        fi
    done
    kill "$GW_PID"
    while kill -0 "$GW_PID" 2>/dev/null; do sleep 0.1; done
    GW_PID=
}

# Two gateways on the PostgreSQL store the last run left (its nodes and 10 campaigns), each on
# its own core, each polled by its own wrk on the other core, against the first alone in the same
# phase: all polls over all the gateways' CPU seconds.
run_pair() {
    mkdir -p "$WORK/gw2"
    cp -r "$WORK/gw/tls" "$WORK/gw/enroll_secret.txt" "$WORK/gw/admin_token.txt" "$WORK/gw/osquery.conf" "$WORK/gw2/"
    local node_store="postgres: \"$POSTGRES_URL\""
    write_config "$WORK/gw" "$node_store" $GW_PORT $ADMIN_PORT
    write_config "$WORK/gw2" "$node_store" $((GW_PORT + 10)) $((ADMIN_PORT + 10))
    local first second
    first=$(start_gateway "$WORK/gw" 0 $ADMIN_PORT)
    second=$(start_gateway "$WORK/gw2" 1 $((ADMIN_PORT + 10)))
    [ -n "$first" ] && [ -n "$second" ] || { echo "the pair did not start"; cat "$WORK/gw/serve.log" "$WORK/gw2/serve.log"; exit 1; }
    GW_PID=$first
    poll_script "$WORK/pair0.lua" "$(enroll_one $GW_PORT pair-0)"
    poll_script "$WORK/pair1.lua" "$(enroll_one $((GW_PORT + 10)) pair-1)"

    local before after
    before=$(cpu "$first")
    taskset -c 1 wrk -t1 -c50 -d"$DURATION" -s "$WORK/pair0.lua" "https://127.0.0.1:$GW_PORT/distributed/read" >"$WORK/pair-alone.txt"
    after=$(cpu "$first")
    PAIR[alone]=$(python3 -c "print(round($(completed "$WORK/pair-alone.txt") / max($after - $before, 0.001)))")

    local b1 b2 a1 a2
    b1=$(cpu "$first"); b2=$(cpu "$second")
    taskset -c 1 wrk -t1 -c50 -d"$DURATION" -s "$WORK/pair0.lua" "https://127.0.0.1:$GW_PORT/distributed/read" >"$WORK/pair-0.txt" &
    local other=$!
    taskset -c 0 wrk -t1 -c50 -d"$DURATION" -s "$WORK/pair1.lua" "https://127.0.0.1:$((GW_PORT + 10))/distributed/read" >"$WORK/pair-1.txt"
    wait "$other"
    a1=$(cpu "$first"); a2=$(cpu "$second")
    local polls=$(( $(completed "$WORK/pair-0.txt") + $(completed "$WORK/pair-1.txt") ))
    PAIR[both]=$(python3 -c "print(round($polls / max($a1 - $b1 + $a2 - $b2, 0.001)))")
    kill "$first" "$second"
    while kill -0 "$first" 2>/dev/null || kill -0 "$second" 2>/dev/null; do sleep 0.1; done
    GW_PID=
}

declare -A ENROLL NODES POLL TRIPS PAIR
run_store sqlite
run_store postgres
run_pair

ratio() { python3 -c "print(f'{$1 / $2:.2f}x')"; }
echo
echo "| per server CPU-second | SQLite | PostgreSQL | PostgreSQL / SQLite |"
echo "|---|---|---|---|"
echo "| enrollments of new hosts | ${ENROLL[sqlite]} | ${ENROLL[postgres]} | $(ratio "${ENROLL[postgres]}" "${ENROLL[sqlite]}") |"
echo "| empty polls, ${NODES[sqlite]}/${NODES[postgres]} nodes, no campaign | ${POLL[sqlite-0]} | ${POLL[postgres-0]} | $(ratio "${POLL[postgres-0]}" "${POLL[sqlite-0]}") |"
echo "| empty polls, 10 active campaigns | ${POLL[sqlite-10]} | ${POLL[postgres-10]} | $(ratio "${POLL[postgres-10]}" "${POLL[sqlite-10]}") |"
echo "| 10 campaigns / none | $(ratio "${POLL[sqlite-10]}" "${POLL[sqlite-0]}") | $(ratio "${POLL[postgres-10]}" "${POLL[postgres-0]}") | |"
echo "| database round trips per 1,000 empty polls | | ${TRIPS[0]} (no campaign), ${TRIPS[10]} (10 campaigns) | |"
echo
echo "| empty polls per gateway CPU-second, PostgreSQL, 10 campaigns | one gateway | two gateways, one per core | two / one |"
echo "|---|---|---|---|"
echo "| | ${PAIR[alone]} | ${PAIR[both]} | $(ratio "${PAIR[both]}" "${PAIR[alone]}") |"
