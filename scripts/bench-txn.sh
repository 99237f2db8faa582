#!/usr/bin/env bash
# Measures what transactions cost on Weir: transactional production that
# commits every 100 ms against the same idempotent producer flushing every
# 100 ms without transactions (internal/bench: one franz-go client,
# 100-byte records, 6 partitions, acks=all, embedded durable Weir). Plain
# idempotent production with a single flush at the end is run too, for
# reference. Each benchmark runs in its own process; the order rotates
# from round to round so that neither position nor drift in the machine's
# load favours one. Prints the median records/s of each, the ratio
# transactional/idempotent (of the medians, and the median of the ratios
# of runs in the same round) and, per commit, the median time spent
# flushing, in EndTransaction and in AddPartitionsToTxn requests.
#
#   scripts/bench-txn.sh [ROUNDS] [RECORDS]     (defaults: 7, 1000000)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-7}
records=${2:-1000000}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
bin=$dir/bench.test
go test -c -o "$bin" ./internal/bench/
out=$dir/out
benches=(WeirProduceTransactional WeirProduceIdempotentFlushing WeirProduce)
cd internal/bench
for i in $(seq "$rounds"); do
  for j in 0 1 2; do
    b=${benches[$(((i + j) % 3))]}
    "$bin" -test.run '^$' -test.bench "^Benchmark$b\$" -test.benchtime "${records}x" | grep '^Benchmark' >>"$out"
  done
  echo "round $i/$rounds done" >&2
done
awk '
  function median(s,   a, k, i, j, t) {
    k = split(substr(s, 2), a, " ")
    for (i = 2; i <= k; i++) for (j = i; j > 1 && a[j-1]+0 > a[j]+0; j--) { t = a[j]; a[j] = a[j-1]; a[j-1] = t }
    return (k % 2) ? a[(k+1)/2] : (a[k/2] + a[k/2+1]) / 2
  }
  { name = $1; sub(/-[0-9]+$/, "", name)
    for (i = 2; i <= NF; i++) {
      if ($i == "records/s") v[name] = v[name] " " $(i-1)
      if ($i == "flush-ms/commit") f[name] = f[name] " " $(i-1)
      if ($i == "endtxn-ms/commit") e[name] = e[name] " " $(i-1)
      if ($i == "commits") c[name] = c[name] " " $(i-1)
      if ($i == "addparts/commit") an[name] = an[name] " " $(i-1)
      if ($i == "addparts-ms/commit") at[name] = at[name] " " $(i-1)
    } }
  END {
    k = split("BenchmarkWeirProduceTransactional BenchmarkWeirProduceIdempotentFlushing BenchmarkWeirProduce", names, " ")
    for (i = 1; i <= k; i++) {
      n = names[i]; med[n] = median(v[n])
      printf "%-40s median %10.0f records/s  (runs:%s)\n", n, med[n], v[n]
    }
    print ""
    for (i = 1; i <= 2; i++) {
      n = names[i]
      printf "%-40s per commit (medians): flush %6.2f ms, EndTransaction %5.2f ms, %.1f AddPartitionsToTxn taking %5.2f ms; %d commits per run\n", n, median(f[n]), median(e[n]), median(an[n]), median(at[n]), median(c[n])
    }
    t = med["BenchmarkWeirProduceTransactional"]; b = med["BenchmarkWeirProduceIdempotentFlushing"]
    printf "\ntransactional/idempotent (both every 100 ms)  %.3f  (cost %.1f%%)\n", t / b, 100 * (1 - t / b)
    # The same ratio taken round by round, where the two ran back to
    # back, then its median: less exposed to slow spells of the machine.
    k = split(substr(v[names[1]], 2), ta, " "); split(substr(v[names[2]], 2), ba, " ")
    r = ""
    for (i = 1; i <= k; i++) r = r sprintf(" %.3f", ta[i] / ba[i])
    pr = median(r)
    printf "  median of per-round ratios                  %.3f  (cost %.1f%%; rounds:%s)\n", pr, 100 * (1 - pr), r
    printf "idempotent flushing every 100 ms/plain        %.3f\n", b / med["BenchmarkWeirProduce"]
  }' "$out"
