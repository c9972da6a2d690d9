#!/usr/bin/env bash
# Runs a command with a throwaway ClickHouse server on 127.0.0.1 (data in a temp folder) and
# CLICKHOUSE_URL pointing at its HTTP interface; stops the server by PID afterwards.
# Without clickhouse-server installed, the command runs alone and ClickHouse tests are skipped.
set -uo pipefail
if ! command -v clickhouse-server >/dev/null 2>&1; then
    echo "with-clickhouse: clickhouse-server not installed; ClickHouse tests will be skipped" >&2
    exec "$@"
fi
TMP=$(mktemp -d /tmp/gw-clickhouse.XXXXXX)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
HTTP_PORT=$(free_port)
TCP_PORT=$(free_port)
mkdir -p "$TMP"/{data,tmp,uf,fs}
clickhouse-server --config-file=/etc/clickhouse-server/config.xml -- \
    --path="$TMP/data/" --tmp_path="$TMP/tmp/" --user_files_path="$TMP/uf/" --format_schema_path="$TMP/fs/" \
    --logger.log="$TMP/ch.log" --logger.errorlog="$TMP/cherr.log" \
    --http_port="$HTTP_PORT" --tcp_port="$TCP_PORT" --listen_host=127.0.0.1 >"$TMP/stdout.log" 2>&1 &
PID=$!
stop() { kill "$PID" 2>/dev/null; wait "$PID" 2>/dev/null; rm -rf "$TMP"; }
trap stop EXIT
for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$HTTP_PORT/?query=SELECT%201" >/dev/null 2>&1 && break
    sleep 0.2
done
if curl -sf "http://127.0.0.1:$HTTP_PORT/?query=SELECT%201" >/dev/null 2>&1; then
    export CLICKHOUSE_URL="http://127.0.0.1:$HTTP_PORT"
    echo "with-clickhouse: ClickHouse $(curl -s "$CLICKHOUSE_URL/?query=SELECT%20version()") on $CLICKHOUSE_URL (pid $PID)" >&2
else
    echo "with-clickhouse: ClickHouse did not start; see below. ClickHouse tests will be skipped." >&2
    tail -5 "$TMP/cherr.log" "$TMP/stdout.log" >&2 || true
fi
"$@"
