#!/usr/bin/env bash
# Runs a command with a throwaway moto server (S3, Kinesis and Firehose in memory) on 127.0.0.1 and
# MOTO_URL pointing at it; stops the server by PID afterwards.
# Without moto_server installed (pip install 'moto[server]'), the command runs alone and the AWS
# sink tests that need moto are skipped.
set -uo pipefail
if ! command -v moto_server >/dev/null 2>&1; then
    echo "with-moto: moto_server not installed; S3, Kinesis and Firehose tests against moto will be skipped" >&2
    exec "$@"
fi
TMP=$(mktemp -d /tmp/gw-moto.XXXXXX)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
moto_server -p "$PORT" -H 127.0.0.1 >"$TMP/moto.log" 2>&1 &
PID=$!
stop() { kill "$PID" 2>/dev/null; wait "$PID" 2>/dev/null; rm -rf "$TMP"; }
trap stop EXIT
URL="http://127.0.0.1:$PORT"
for _ in $(seq 150); do
    curl -sf -o /dev/null "$URL/moto-api/" && break
    kill -0 "$PID" 2>/dev/null || break
    sleep 0.2
done
if curl -sf -o /dev/null "$URL/moto-api/"; then
    export MOTO_URL="$URL"
    echo "with-moto: moto on $MOTO_URL (pid $PID)" >&2
else
    echo "with-moto: moto did not start; see below. Tests against moto will be skipped." >&2
    tail -5 "$TMP/moto.log" >&2 || true
fi
"$@"
