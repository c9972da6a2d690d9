#!/usr/bin/env bash
# Sink throughput (issue #3), one run, same data for every row:
#   zstd archive sink MB/s per CPU second vs `zstd -3 -T1` on the same JSON lines, and output sizes;
#   file sink MB/s vs `dd bs=1M conv=fdatasync`.
# Everything runs on core 1 (taskset). Rerun: Benchmarks/sink-bench.sh [megabytes, default 200].
set -euo pipefail
cd "$(dirname "$0")/.."
MB=${1:-200}
swift build -c release --product sink-bench >/dev/null
BIN=.build/release/sink-bench
WORK=$(mktemp -d /tmp/gw-sinkbench.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
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
