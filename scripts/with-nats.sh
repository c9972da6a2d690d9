#!/usr/bin/env bash
# Runs a command with a throwaway NATS server with JetStream on 127.0.0.1 (storage in a temp folder):
# NATS_URL is its client port, NATS_MONITOR_URL its monitoring endpoint (/jsz), NATS_SERVER the
# binary (tests that stop and restart a server of their own use it); stops the server by PID after.
# Without nats-server installed, the command runs alone and NATS tests are skipped.
set -uo pipefail
BIN=$(command -v nats-server || { [ -x /usr/sbin/nats-server ] && echo /usr/sbin/nats-server; })
if [ -z "$BIN" ]; then
    echo "with-nats: nats-server not installed; NATS tests will be skipped" >&2
    exec "$@"
fi
TMP=$(mktemp -d /tmp/gw-nats.XXXXXX)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
PORT=$(free_port)
MONITOR_PORT=$(free_port)
"$BIN" -a 127.0.0.1 -p "$PORT" -m "$MONITOR_PORT" -js -sd "$TMP/store" >"$TMP/nats.log" 2>&1 &
PID=$!
stop() { kill "$PID" 2>/dev/null; wait "$PID" 2>/dev/null; rm -rf "$TMP"; }
trap stop EXIT
for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$MONITOR_PORT/healthz?js-enabled-only=true" >/dev/null 2>&1 && break
    sleep 0.1
done
if curl -sf "http://127.0.0.1:$MONITOR_PORT/healthz?js-enabled-only=true" >/dev/null 2>&1; then
    export NATS_URL="nats://127.0.0.1:$PORT" NATS_MONITOR_URL="http://127.0.0.1:$MONITOR_PORT" NATS_SERVER="$BIN"
    echo "with-nats: $("$BIN" --version) on $NATS_URL, monitoring $NATS_MONITOR_URL (pid $PID)" >&2
else
    echo "with-nats: nats-server did not start; see below. NATS tests will be skipped." >&2
    tail -5 "$TMP/nats.log" >&2 || true
fi
"$@"
