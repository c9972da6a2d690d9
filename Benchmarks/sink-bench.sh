#!/usr/bin/env bash
# Sink throughput (issues #3 and #13), one run, same data for every row:
#   zstd archive sink MB/s per CPU second vs `zstd -3 -T1` on the same JSON lines, and output sizes;
#   file sink MB/s vs `dd bs=1M conv=fdatasync`;
#   each network sink against its real server, records per CPU second of the sink's process: s3 vs
#   `zstd -3 -T1` of the same lines; kinesis, firehose, nats, syslog, postgres, and the http sink's
#   kafka_rest and otlp formats vs the http sink's ndjson figure (nginx `return 200` as receiver).
# The sinks run on core 1 (taskset). The network rows need the servers scripts/with-*.sh start and
# export (MOTO_URL, NATS_URL, RSYSLOG_TCP_PORT, POSTGRES_URL), which `make bench-sinks` puts on
# core 0; a row whose server is missing is skipped. Rerun: `make bench-sinks`, or
# Benchmarks/sink-bench.sh [megabytes, default 200] (SINK_RECORDS: lines per network row, 50000).
set -euo pipefail
cd "$(dirname "$0")/.."
MB=${1:-200}
RECORDS=${SINK_RECORDS:-50000}
swift build -c release --product sink-bench >/dev/null
BIN=.build/release/sink-bench
WORK=$(mktemp -d /tmp/gw-sinkbench.XXXXXX)
cleanup() {
    [ -f "$WORK/nginx/nginx.pid" ] && kill "$(cat "$WORK/nginx/nginx.pid")" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
$BIN generate "$WORK/lines.jsonl" "$MB"
SIZE=$(stat -c %s "$WORK/lines.jsonl")
cat "$WORK/lines.jsonl" >/dev/null   # page cache

cli_cpu=$( { /usr/bin/time -f "%U %S" taskset -c 1 zstd -q -3 -T1 "$WORK/lines.jsonl" -o "$WORK/cli.zst"; } 2>&1 | awk '{print $1 + $2}')
cli_rate=$(awk -v b="$SIZE" -v s="$cli_cpu" 'BEGIN {printf "%.1f", b / 1e6 / s}')
sink_line=$(taskset -c 1 $BIN zstd "$WORK/lines.jsonl" "$WORK/archive")
sink_rate=$(echo "$sink_line" | sed -E 's/.*: ([0-9.]+) MB\/s per core/\1/')
sink_size=$(find "$WORK/archive" -name '*.jsonl.zst' -printf '%s\n' | awk '{s += $1} END {print s}')
cli_size=$(stat -c %s "$WORK/cli.zst")
zstd -t -q "$(find "$WORK/archive" -name '*.jsonl.zst' | head -1)"

dd_line=$(taskset -c 1 dd if="$WORK/lines.jsonl" of="$WORK/dd.out" bs=1M conv=fdatasync 2>&1 | tail -1)
dd_rate=$(awk -v b="$SIZE" -v s="$(echo "$dd_line" | sed -E 's/.* copied, ([0-9.]+) s.*/\1/')" 'BEGIN {printf "%.1f", b / 1e6 / s}')
rm -f "$WORK/dd.out"
file_line=$(taskset -c 1 $BIN file "$WORK/lines.jsonl" "$WORK/files")
file_rate=$(echo "$file_line" | sed -E 's/.*: ([0-9.]+) MB\/s/\1/')

echo "input: $(awk -v b="$SIZE" 'BEGIN {printf "%.1f", b / 1e6}') MB of osquery result lines"
printf '%-36s %10s %10s %8s\n' "measurement" "gateway" "baseline" "ratio"
printf '%-36s %10s %10s %8s\n' "zstd MB/s per core (vs zstd -3 -T1)" "$sink_rate" "$cli_rate" "$(awk -v a="$sink_rate" -v b="$cli_rate" 'BEGIN {printf "%.2fx", a/b}')"
printf '%-36s %10s %10s %8s\n' "zstd output bytes (vs CLI)" "$sink_size" "$cli_size" "$(awk -v a="$sink_size" -v b="$cli_size" 'BEGIN {printf "%.3fx", a/b}')"
printf '%-36s %10s %10s %8s\n' "file sink MB/s (vs dd fdatasync)" "$file_rate" "$dd_rate" "$(awk -v a="$file_rate" -v b="$dd_rate" 'BEGIN {printf "%.2fx", a/b}')"

# Network sinks (issue 13 item 8). The same lines for every row (the first $RECORDS), fresh names per
# run (bucket, streams, table), each sink on its own defaults. The baseline of the s3 row is zstd's
# records per CPU second from the whole file above; of the others, the http sink's ndjson row: the
# plainest way to hand the same records to a server.
head -n "$RECORDS" "$WORK/lines.jsonl" > "$WORK/sink-lines.jsonl"
LINES=$(wc -l < "$WORK/lines.jsonl")
TAG=$(python3 -c 'import uuid; print(uuid.uuid4().hex[:8])')
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

if command -v nginx >/dev/null 2>&1; then
    HTTP_PORT=$(free_port)
    mkdir -p "$WORK/nginx/logs"
    cat > "$WORK/nginx/nginx.conf" <<NGINX
worker_processes 1;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/logs/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  keepalive_requests 10000000;
  server {
    listen 127.0.0.1:$HTTP_PORT;
    client_max_body_size 64m;
    default_type application/json;
    location / { return 200 '{}'; }
  }
}
NGINX
    taskset -c 0 nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf"
    export BENCH_HTTP_URL="http://127.0.0.1:$HTTP_PORT"
else
    echo "sink-bench: nginx not installed; the http rows are skipped" >&2
fi

# The bucket, stream and delivery stream the AWS sinks write to (moto takes any credentials).
AWS_READY=false
if [ -n "${MOTO_URL:-}" ]; then
    if python3 - "$MOTO_URL" "$TAG" <<'PY'
import sys
import boto3
url, tag = sys.argv[1], sys.argv[2]
options = dict(endpoint_url=url, region_name="us-east-1", aws_access_key_id="AKIDBENCH", aws_secret_access_key="moto-takes-any-secret")
s3 = boto3.client("s3", **options)
s3.create_bucket(Bucket="bench-" + tag)
s3.create_bucket(Bucket="bench-hose-" + tag)
boto3.client("kinesis", **options).create_stream(StreamName="bench-" + tag, ShardCount=1)
boto3.client("firehose", **options).create_delivery_stream(
    DeliveryStreamName="bench-" + tag, DeliveryStreamType="DirectPut",
    ExtendedS3DestinationConfiguration={
        "RoleARN": "arn:aws:iam::123456789012:role/firehose", "BucketARN": "arn:aws:s3:::bench-hose-" + tag,
        "Prefix": "logs/", "BufferingHints": {"SizeInMBs": 1, "IntervalInSeconds": 60}})
PY
    then
        AWS_READY=true
    else
        echo "sink-bench: cannot set up moto (boto3 missing?); the s3, kinesis and firehose rows are skipped" >&2
    fi
fi

# Records per CPU second of sink `$1`, or nothing when its server ($2 names it) is missing or a batch
# failed; what the run printed goes to $WORK/details (the rows are read in command substitutions).
sink_rate() {
    local kind=$1 needs=$2 line
    if [ -z "${!needs:-}" ] || { [ "$needs" = MOTO_URL ] && ! $AWS_READY; }; then
        echo "$kind: skipped (no $needs)" >> "$WORK/details"
        return 0
    fi
    line=$(taskset -c 1 "$BIN" sink "$kind" "$WORK/sink-lines.jsonl" "$RECORDS" "$TAG" 2>&1) || true
    echo "$line" >> "$WORK/details"
    echo "$line" | sed -nE 's/.*: ([0-9]+) records\/s per CPU s$/\1/p'
}
row() {
    local ratio="-"
    [ -n "$2" ] && [ -n "$3" ] && ratio=$(awk -v a="$2" -v b="$3" 'BEGIN {printf "%.2fx", a/b}')
    printf '%-44s %10s %10s %8s\n' "$1" "${2:-skipped}" "${3:--}" "$ratio"
}
zstd_records=$(awk -v n="$LINES" -v s="$cli_cpu" 'BEGIN {printf "%.0f", n / s}')
ndjson=$(sink_rate ndjson BENCH_HTTP_URL)
s3=$(sink_rate s3 MOTO_URL)
kinesis=$(sink_rate kinesis MOTO_URL)
firehose=$(sink_rate firehose MOTO_URL)
nats=$(sink_rate nats NATS_URL)
syslog=$(sink_rate syslog RSYSLOG_TCP_PORT)
postgres=$(sink_rate postgres POSTGRES_URL)
kafka_rest=$(sink_rate kafka_rest BENCH_HTTP_URL)
otlp=$(sink_rate otlp BENCH_HTTP_URL)

echo
echo "network sinks: $RECORDS lines each, records per CPU second of the sink process (core 1)"
printf '%-44s %10s %10s %8s\n' "measurement" "gateway" "baseline" "ratio"
row "s3 (vs zstd -3 -T1 of the same lines)" "$s3" "$zstd_records"
row "kinesis (vs http ndjson)" "$kinesis" "$ndjson"
row "firehose (vs http ndjson)" "$firehose" "$ndjson"
row "nats JetStream (vs http ndjson)" "$nats" "$ndjson"
row "syslog tcp (vs http ndjson)" "$syslog" "$ndjson"
row "postgres (vs http ndjson)" "$postgres" "$ndjson"
row "http kafka_rest (vs http ndjson)" "$kafka_rest" "$ndjson"
row "http otlp (vs http ndjson)" "$otlp" "$ndjson"
row "http ndjson (nginx return 200)" "$ndjson" ""
sed 's/^/  /' "$WORK/details"
