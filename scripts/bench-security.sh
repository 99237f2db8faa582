#!/usr/bin/env bash
# Measures what TLS and SASL cost the clients of one Weir broker
# (e2e/bench_security_test.go): one franz-go client producing 100-byte
# records (idempotent, acks=all, 6 partitions) and consuming them back,
# on the broker's PLAINTEXT listener and on its SASL_SSL listener
# (SCRAM-SHA-512 over TLS), in alternating order, a new broker each round.
#
# Prints the medians and the ratios SASL_SSL / PLAINTEXT (of the medians,
# and the median of the per-round ratios).
#
#   scripts/bench-security.sh [ROUNDS] [RECORDS]   (defaults: 7, 500000)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-7}
records=${2:-500000}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
bin=$dir/e2e.test
go test -c -o "$bin" ./e2e/
out=$dir/out
cd e2e
for i in $(seq "$rounds"); do
  order=forward
  [ $((i % 2)) -eq 0 ] && order=reverse
  WEIR_BENCH_ORDER=$order "$bin" -test.run '^$' -test.bench '^BenchmarkListenerSecurity$' -test.benchtime "${records}x" |
    grep '^Benchmark' | sed "s/^/round$i /" >>"$out"
  echo "round $i/$rounds done" >&2
done
awk '
  function median(s,   a, k, i, j, t) {
    k = split(substr(s, 2), a, " ")
    for (i = 2; i <= k; i++) for (j = i; j > 1 && a[j-1]+0 > a[j]+0; j--) { t = a[j]; a[j] = a[j-1]; a[j-1] = t }
    return (k % 2) ? a[(k+1)/2] : (a[k/2] + a[k/2+1]) / 2
  }
  { round = $1; name = $2; sub(/-[0-9]+$/, "", name); sub(/.*\//, "", name)
    for (i = 4; i < NF; i += 2) { v[name, $(i+1)] = v[name, $(i+1)] " " $i; per[round, name, $(i+1)] = $i }
    rounds[round] = 1 }
  END {
    split("produce-records/s consume-records/s", units, " ")
    for (n = 1; n <= 2; n++) {
      name = (n == 1) ? "plaintext" : "sasl_ssl"
      line = name ":"
      for (u = 1; u <= 2; u++) line = line sprintf(" %s %s", units[u], median(v[name, units[u]]))
      print line
    }
    for (u = 1; u <= 2; u++) {
      rs = ""
      for (r in rounds) if (per[r, "plaintext", units[u]] > 0) rs = rs " " per[r, "sasl_ssl", units[u]] / per[r, "plaintext", units[u]]
      printf "%s sasl_ssl/plaintext: %.2f (of medians), %.2f (median per round)\n", units[u], median(v["sasl_ssl", units[u]]) / median(v["plaintext", units[u]]), median(rs)
    }
  }' "$out"
