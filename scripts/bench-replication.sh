#!/usr/bin/env bash
# Measures what partition replication costs on Weir, on a cluster of three
# `weir serve` processes on this machine (e2e/bench_replication_test.go):
#
#  - throughput and produce latency of one franz-go client (idempotent,
#    acks=all, 100-byte records, 6 partitions) to a topic of replication
#    factor 1 and to one of replication factor 3 with min.insync.replicas
#    2, where every acknowledged record is fsynced on the three replicas;
#    each round starts a new cluster, and the order of the two rotates;
#  - failover time: from the loss of a partition's leader (SIGKILL with
#    the default 9 s broker session, SIGKILL with a 2 s session, SIGTERM)
#    to the first acknowledged write sent after it.
#
# Prints the medians and the ratio replication factor 3 / 1 (of the
# medians, and the median of the per-round ratios).
#
#   scripts/bench-replication.sh [ROUNDS] [RECORDS] [FAILOVERS]
#                                              (defaults: 7, 1000000, 5)
# WEIR_BENCH_DIR=/dev/shm keeps the data directories on a tmpfs.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-7}
records=${2:-1000000}
failovers=${3:-5}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
bin=$dir/e2e.test
go test -c -o "$bin" ./e2e/
out=$dir/out
cd e2e
for i in $(seq "$rounds"); do
  if [ $((i % 2)) -eq 1 ]; then order="1 3"; else order="3 1"; fi
  for rf in $order; do
    "$bin" -test.run '^$' -test.bench "^BenchmarkReplicatedProduce/rf=$rf\$" -test.benchtime "${records}x" | grep '^Benchmark' | sed "s/^/round$i /" >>"$out"
  done
  echo "round $i/$rounds done" >&2
done
awk '
  function median(s,   a, k, i, j, t) {
    k = split(substr(s, 2), a, " ")
    for (i = 2; i <= k; i++) for (j = i; j > 1 && a[j-1]+0 > a[j]+0; j--) { t = a[j]; a[j] = a[j-1]; a[j-1] = t }
    return (k % 2) ? a[(k+1)/2] : (a[k/2] + a[k/2+1]) / 2
  }
  { round = $1; name = $2; sub(/-[0-9]+$/, "", name); sub(/.*rf=/, "rf", name)
    for (i = 4; i < NF; i += 2) { v[name, $(i+1)] = v[name, $(i+1)] " " $i; per[round, name, $(i+1)] = $i }
    rounds[round] = 1 }
  END {
    split("records/s p50-ms p99-ms broker-cpu-ns/record", units, " ")
    for (n = 1; n <= 2; n++) {
      name = (n == 1) ? "rf1" : "rf3"
      line = name ":"
      for (u = 1; u <= 4; u++) line = line sprintf(" %s %s", units[u], median(v[name, units[u]]))
      print line
    }
    for (r in rounds) if (per[r, "rf1", "records/s"] > 0) ratios = ratios " " per[r, "rf3", "records/s"] / per[r, "rf1", "records/s"]
    printf "throughput rf3/rf1: %.2f (of medians), %.2f (median per round)\n", median(v["rf3", "records/s"]) / median(v["rf1", "records/s"]), median(ratios)
  }' "$out"
"$bin" -test.run '^$' -test.bench '^BenchmarkLeaderFailover$' -test.benchtime "${failovers}x" | grep '^Benchmark'
