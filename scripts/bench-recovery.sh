#!/usr/bin/env bash
# Measures how long a single `weir serve` takes to serve again after a
# SIGKILL with a large log, and checks that every acknowledged record is
# still there:
#
#  - writes RECORDS records of 1,000 bytes (acks=all, idempotent) to a
#    topic of PARTITIONS partitions with `weir bench produce`;
#  - SIGKILLs the broker, starts it again on the same data directory and
#    reports the time from the start to the first answered Metadata
#    request listing the topic, and to the first acknowledged acks=all
#    write;
#  - compares the sum of the partitions' high watermarks with the number
#    of acknowledged records, and fails if any is missing.
#
#   scripts/bench-recovery.sh [RECORDS] [PARTITIONS]   (defaults: 1000000, 100)
# 1,000,000 records are about 1 GB of log. WEIR_BENCH_DIR sets where the
# data directory goes (default: a new directory under /tmp).
set -euo pipefail
cd "$(dirname "$0")/.."
records=${1:-1000000}
partitions=${2:-100}
dir=$(mktemp -d "${WEIR_BENCH_DIR:-/tmp}/weir-recovery.XXXXXX")
pid=
trap '[ -n "$pid" ] && kill -9 "$pid" 2>/dev/null; rm -rf "$dir"' EXIT
go build -o "$dir/weir" ./cmd/weir
weir=$dir/weir
port=$((20000 + RANDOM % 10000))
addr=127.0.0.1:$port
serve() {
	"$weir" serve --data "$dir/data" --listen "$addr" --admin-listen "" >>"$dir/serve.log" 2>&1 &
	pid=$!
}
now() { date +%s.%N; }
serve
until "$weir" topic list --brokers "$addr" >/dev/null 2>&1; do sleep 0.1; done
"$weir" topic create recovery --brokers "$addr" --partitions "$partitions" >/dev/null
"$weir" bench produce --brokers "$addr" --topic recovery --records "$records" --record-size 1000 --partitions "$partitions"
echo "log on disk: $(du -sh "$dir/data" | cut -f1)"
kill -9 "$pid"
wait "$pid" 2>/dev/null || true
start=$(now)
serve
until "$weir" topic describe recovery --brokers "$addr" >/dev/null 2>&1; do sleep 0.02; done
listed=$(now)
until echo after | "$weir" produce recovery --brokers "$addr" >/dev/null 2>&1; do sleep 0.02; done
written=$(now)
hw=$("$weir" topic describe recovery --brokers "$addr" | awk '$1 ~ /^[0-9]+$/ && NF == 9 {s += $8} END {print s}')
printf 'restart to Metadata: %.2f s\nrestart to the first acks=all write: %.2f s\n' "$(echo "$listed - $start" | bc)" "$(echo "$written - $start" | bc)"
echo "sum of high watermarks after the restart: $hw (acknowledged: $records before the kill, 1 after)"
[ "$hw" -ge $((records + 1)) ]
