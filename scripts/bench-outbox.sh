#!/usr/bin/env bash
# Measures the outbox relay's throughput from table to topic
# (pkg/outbox BenchmarkRelay): EVENTS pending rows (100-byte payloads, 16
# keys) in PostgreSQL (started by the test, fsync off), a 3-partition
# topic on an embedded durable Weir (acks=all), one Kafka transaction per
# batch, timed from the relays' start until they have marked every row
# sent. One relay at batch sizes 10, 100 and 1000; two relays (two relay
# ids) at 100 and 1000. Each round runs in its own process; prints every
# run and the median events/s of each case.
#
#   scripts/bench-outbox.sh [ROUNDS] [EVENTS]     (defaults: 3, 20000)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
events=${2:-20000}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
bin=$dir/outbox.test
go test -c -o "$bin" ./pkg/outbox/
out=$dir/out
cd pkg/outbox
for _ in $(seq "$rounds"); do
  "$bin" -test.run '^$' -test.bench '^BenchmarkRelay$' -test.benchtime "${events}x" | grep '^Benchmark' | tee -a "$out"
done
echo
echo "median events/s over $rounds rounds of $events events:"
for c in relays=1/batch=10 relays=1/batch=100 relays=1/batch=1000 relays=2/batch=100 relays=2/batch=1000; do
  grep "/$c-" "$out" | awk '{for (i = 1; i < NF; i++) if ($(i+1) == "events/s") print $i}' | sort -n |
    awk -v c="$c" '{v[NR] = $1} END {printf "  %-20s %8.0f events/s\n", c, (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'
done
