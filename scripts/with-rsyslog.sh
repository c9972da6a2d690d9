#!/usr/bin/env bash
# Runs a command with a throwaway rsyslogd on 127.0.0.1 that takes RFC 5424 messages over TCP
# (octet counting or newline framing) and writes each, in RSYSLOG_SyslogProtocol23Format, as one
# line of a file: RSYSLOG_TCP_PORT and RSYSLOG_OUTPUT_FILE; RSYSLOGD is the binary (tests that stop
# and restart a receiver of their own use it). Only imtcp is loaded (no imuxsock, so /dev/log is
# never touched); its work folder, PID file and output live in a temp folder. Stopped by PID after.
# Without rsyslogd installed, the command runs alone and syslog tests are skipped.
set -uo pipefail
BIN=$(command -v rsyslogd || { [ -x /usr/sbin/rsyslogd ] && echo /usr/sbin/rsyslogd; })
if [ -z "$BIN" ]; then
    echo "with-rsyslog: rsyslogd not installed; syslog tests will be skipped" >&2
    exec "$@"
fi
TMP=$(mktemp -d /tmp/gw-rsyslog.XXXXXX)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
PORT=$(free_port)
mkdir -p "$TMP/work"
# maxMessageSize: osquery records are often larger than rsyslog's 8 KiB default.
cat >"$TMP/rsyslog.conf" <<CONF
global(workDirectory="$TMP/work" maxMessageSize="1m")
module(load="imtcp")
input(type="imtcp" port="$PORT" address="127.0.0.1" ruleset="received")
ruleset(name="received") {
    action(type="omfile" file="$TMP/received.log" template="RSYSLOG_SyslogProtocol23Format")
}
CONF
"$BIN" -n -f "$TMP/rsyslog.conf" -i "$TMP/rsyslogd.pid" >"$TMP/rsyslog.log" 2>&1 &
PID=$!
stop() { kill "$PID" 2>/dev/null; wait "$PID" 2>/dev/null; rm -rf "$TMP"; }
trap stop EXIT
listening() { python3 -c "import socket,sys; s=socket.socket(); s.settimeout(0.2); sys.exit(s.connect_ex(('127.0.0.1',$PORT)))"; }
for _ in $(seq 100); do
    listening && break
    sleep 0.1
done
if listening; then
    export RSYSLOG_TCP_PORT="$PORT" RSYSLOG_OUTPUT_FILE="$TMP/received.log" RSYSLOGD="$BIN"
    echo "with-rsyslog: $("$BIN" -v | head -1 | awk '{print $1, $2}') on 127.0.0.1:$PORT writing $RSYSLOG_OUTPUT_FILE (pid $PID)" >&2
else
    echo "with-rsyslog: rsyslogd did not start; see below. Syslog tests will be skipped." >&2
    tail -5 "$TMP/rsyslog.log" >&2 || true
fi
"$@"
