#!/usr/bin/env bash
# Compares Weir with franz-go's in-memory fake cluster (kfake) on the same
# workload (internal/bench: one franz-go client, 100-byte records, 6
# partitions, acks=all), and prints the median records/s of each benchmark
# and the ratios. Each benchmark runs in its own process, and the order
# rotates from round to round, so that neither drift in the machine's load
# nor a place early or late in a process (a cold heap) favours one.
#
# Consume is also measured against the replay server (internal/bench,
# replay_test.go): a measurement instrument, not a broker, which serves the
# record batches captured from Weir from memory with next to no work per
# fetch. Its figure is the ceiling of the consume benchmark: what this
# consumer reaches on this machine when the broker costs nothing. The
# *Separate consume benchmarks run the cluster in a child process instead
# of in the consumer's. ReplayCopyConsume is the replay server doing the
# copies a broker reading its log does (a fresh buffer per partition read,
# the response encoded with kmsg), to show what they cost. WeirConsumeHeap
# is WeirConsume with an idle buffer the size of the records on the Go
# heap, as kfake and the replay server have, to show how much in-process
# figures owe to the collector's pacing.
#
#   scripts/bench-vs-kfake.sh [ROUNDS] [RECORDS] [SET]
#
# defaults: 7 rounds, 1000000 records, SET=all; SET=consume runs only the
# consume benchmarks, SET=produce only the produce ones.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-7}
records=${2:-1000000}
set=${3:-all}
produce=(KfakeProduce WeirProduce WeirProduceNonIdempotent)
consume=(KfakeConsume WeirConsume WeirConsumeHeap ReplayConsume ReplayCopyConsume KfakeConsumeSeparate WeirConsumeSeparate ReplayConsumeSeparate)
case $set in
all) benches=("${produce[@]}" "${consume[@]}") ;;
produce) benches=("${produce[@]}") ;;
consume) benches=("${consume[@]}") ;;
*) echo "usage: $0 [ROUNDS] [RECORDS] [all|produce|consume]" >&2; exit 2 ;;
esac
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
bin=$dir/bench.test
go test -c -o "$bin" ./internal/bench/
out=$dir/out
n=${#benches[@]}
cd internal/bench
for i in $(seq "$rounds"); do
  for j in $(seq 0 $((n - 1))); do
    b=${benches[$(((i + j) % n))]}
    "$bin" -test.run '^$' -test.bench "^Benchmark$b\$" -test.benchtime "${records}x" |
      grep '^Benchmark' | sed "s/\$/ round $i/" >>"$out"
  done
  echo "round $i/$rounds done" >&2
done
awk '
  function median(s,   a, k, i, j, t) {
    k = split(substr(s, 2), a, " ")
    for (i = 2; i <= k; i++) for (j = i; j > 1 && a[j-1]+0 > a[j]+0; j--) { t = a[j]; a[j] = a[j-1]; a[j-1] = t }
    return (k % 2) ? a[(k+1)/2] : (a[k/2] + a[k/2+1]) / 2
  }
  { name = $1; sub(/-[0-9]+$/, "", name); sub(/^Benchmark/, "", name)
    r = $NF
    for (i = 2; i <= NF; i++) {
      if ($i == "records/s") { v[name] = v[name] " " $(i-1); x[name, r] = $(i-1); rounds[r] = 1 }
      if ($i == "MB/fetch") mb[name] = mb[name] " " $(i-1)
      if ($i == "cpu-ns/record") cpu[name] = cpu[name] " " $(i-1)
    } }
  # ratio prints a/b for the medians, and the median of the per-round
  # ratios of runs in the same round.
  function ratio(label, a, b,   s, r) {
    if (!(a in med) || !(b in med)) return
    s = ""
    for (r in rounds) if ((a, r) in x && (b, r) in x) s = s " " x[a, r] / x[b, r]
    printf "%-34s %5.2f   (per round: median %.2f)\n", label, med[a] / med[b], median(s)
  }
  END {
    for (n in v) {
      med[n] = median(v[n])
      printf "%-28s median %9.0f records/s", n, med[n]
      if (n in mb) printf ", %.2f MB/fetch", median(mb[n])
      if (n in cpu) printf ", %.0f cpu-ns/record", median(cpu[n])
      printf "  (runs:%s)\n", v[n]
    }
    print ""
    ratio("produce  Weir/kfake", "WeirProduce", "KfakeProduce")
    ratio("produce  idempotent/plain Weir", "WeirProduce", "WeirProduceNonIdempotent")
    ratio("consume  Weir/kfake", "WeirConsume", "KfakeConsume")
    ratio("consume  ceiling/kfake", "ReplayConsume", "KfakeConsume")
    ratio("consume  Weir/ceiling", "WeirConsume", "ReplayConsume")
    ratio("consume  copying/ceiling", "ReplayCopyConsume", "ReplayConsume")
    ratio("consume  Weir+heap/kfake", "WeirConsumeHeap", "KfakeConsume")
    ratio("consume  Weir+heap/ceiling", "WeirConsumeHeap", "ReplayConsume")
    ratio("separate Weir/kfake", "WeirConsumeSeparate", "KfakeConsumeSeparate")
    ratio("separate ceiling/kfake", "ReplayConsumeSeparate", "KfakeConsumeSeparate")
    ratio("separate Weir/ceiling", "WeirConsumeSeparate", "ReplayConsumeSeparate")
  }' "$out"
