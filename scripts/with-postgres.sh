#!/usr/bin/env bash
# Runs a command with a throwaway PostgreSQL on 127.0.0.1 (cluster in a temp folder, a free port) and
# POSTGRES_URL pointing at its `gateway_test` database; stops the server by its data folder and PID
# afterwards. initdb refuses to run as root, so as root the cluster belongs to the `postgres` user.
# Without PostgreSQL installed, the command runs alone and PostgreSQL tests are skipped.
set -uo pipefail
# Debian's server binaries, not whatever else is on the PATH (/usr/local/bin may hold other builds).
BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
if [ -z "$BIN" ] || [ ! -x "$BIN/initdb" ] || [ ! -x "$BIN/pg_ctl" ]; then
    echo "with-postgres: PostgreSQL server not installed; PostgreSQL tests will be skipped" >&2
    exec "$@"
fi
TMP=$(mktemp -d /tmp/gw-postgres.XXXXXX)
DATA="$TMP/data"
as_owner() { "$@"; }
if [ "$(id -u)" -eq 0 ]; then
    if ! id postgres >/dev/null 2>&1; then
        echo "with-postgres: running as root and there is no postgres user; PostgreSQL tests will be skipped" >&2
        rm -rf "$TMP"
        exec "$@"
    fi
    chown postgres "$TMP"
    as_owner() { runuser -u postgres -- "$@"; }
fi
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
PORT=$(free_port)
PID=""
stop() {
    if [ -f "$DATA/postmaster.pid" ]; then
        as_owner "$BIN/pg_ctl" -D "$DATA" -m fast -w stop >/dev/null 2>&1 || { [ -n "$PID" ] && kill "$PID" 2>/dev/null; }
    fi
    rm -rf "$TMP"
}
trap stop EXIT
started=false
if as_owner "$BIN/initdb" -D "$DATA" --auth=trust -U postgres -E UTF8 --locale=C.UTF-8 >"$TMP/initdb.log" 2>&1 \
    && as_owner "$BIN/pg_ctl" -D "$DATA" -l "$TMP/server.log" -w -t 30 start \
        -o "-p $PORT -k $TMP -c listen_addresses=127.0.0.1 -c fsync=off" >/dev/null 2>&1 \
    && "$BIN/createdb" -h 127.0.0.1 -p "$PORT" -U postgres gateway_test >>"$TMP/server.log" 2>&1; then
    started=true
fi
if $started; then
    PID=$(head -1 "$DATA/postmaster.pid")
    export POSTGRES_URL="postgres://postgres@127.0.0.1:$PORT/gateway_test"
    echo "with-postgres: PostgreSQL $("$BIN/postgres" --version | awk '{print $3}') on $POSTGRES_URL (pid $PID)" >&2
else
    echo "with-postgres: PostgreSQL did not start; see below. PostgreSQL tests will be skipped." >&2
    tail -5 "$TMP/initdb.log" "$TMP/server.log" >&2 2>/dev/null || true
fi
"$@"
