#!/usr/bin/env bash
# Compares Weir with franz-go's in-memory fake cluster (kfake) on the same
# workload (internal/bench: one franz-go client, 100-byte records, 6
# partitions, acks=all), interleaving the runs so that drift in the
# machine's load hits both alike, and prints the median records/s of each
# benchmark and the ratios.
#
#   scripts/bench-vs-kfake.sh [ROUNDS] [RECORDS]     (defaults: 7, 1000000)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-7}
records=${2:-1000000}
bin=$(mktemp -d)/bench.test
go test -c -o "$bin" ./internal/bench/
out=$(mktemp)
cd internal/bench
for i in $(seq "$rounds"); do
  "$bin" -test.run '^$' -test.bench '^Benchmark(Kfake|Weir)(Produce|ProduceNonIdempotent|Consume)$' -test.benchtime "${records}x" | grep '^Benchmark' >>"$out"
  echo "round $i/$rounds done" >&2
done
awk '
  { name=$1; sub(/-[0-9]+$/, "", name)
    for (i=2; i<=NF; i++) if ($i=="records/s") v[name]=v[name] " " $(i-1) }
  END {
    for (n in v) {
      k=split(substr(v[n],2), a, " ")
      for (i=2; i<=k; i++) for (j=i; j>1 && a[j-1]+0>a[j]+0; j--) { t=a[j]; a[j]=a[j-1]; a[j-1]=t }
      med[n]=(k%2) ? a[(k+1)/2] : (a[k/2]+a[k/2+1])/2
      printf "%-40s median %10.0f records/s  (runs:%s)\n", n, med[n], v[n]
    }
    printf "\nproduce  Weir/kfake            %.2f\n", med["BenchmarkWeirProduce"]/med["BenchmarkKfakeProduce"]
    printf "consume  Weir/kfake            %.2f\n", med["BenchmarkWeirConsume"]/med["BenchmarkKfakeConsume"]
    printf "produce  idempotent/plain Weir %.3f\n", med["BenchmarkWeirProduce"]/med["BenchmarkWeirProduceNonIdempotent"]
  }' "$out"
