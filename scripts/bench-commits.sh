#!/usr/bin/env bash
# Commits per second of 64 transactional producers on distinct
# transactional ids, each committing one-record transactions in a loop
# against one embedded durable Weir (BenchmarkWeirConcurrentCommits64 in
# internal/bench). With a revision as third argument, the same benchmark
# also runs against the broker of that revision (built in a temporary git
# worktree, with this tree's benchmark files copied in), interleaved
# round by round with this tree's, so that drift in the machine's load
# favours neither. Prints the median commits/s and time in EndTransaction
# per commit of each.
#
#   scripts/bench-commits.sh [ROUNDS] [COMMITS] [BEFORE_REV]   (defaults: 7, 3000)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-7}
commits=${2:-3000}
before=${3:-}
dir=$(mktemp -d)
cleanup() {
  if [ -n "$before" ]; then git worktree remove --force "$dir/before" 2>/dev/null || true; fi
  rm -rf "$dir"
}
trap cleanup EXIT
go test -c -o "$dir/after.test" ./internal/bench/
variants=(after)
if [ -n "$before" ]; then
  git worktree add --detach "$dir/before" "$before" >/dev/null
  cp internal/bench/txn_commits.go internal/bench/txn_commits_test.go "$dir/before/internal/bench/"
  (cd "$dir/before" && go test -c -o "$dir/before.test" ./internal/bench/)
  variants=(before after)
fi
out=$dir/out
cd internal/bench
for i in $(seq "$rounds"); do
  n=${#variants[@]}
  for j in $(seq 0 $((n - 1))); do
    v=${variants[$(((i + j) % n))]}
    "$dir/$v.test" -test.run '^$' -test.bench '^BenchmarkWeirConcurrentCommits64$' -test.benchtime "${commits}x" |
      grep '^Benchmark' | sed "s/^/$v /" >>"$out"
  done
  echo "round $i/$rounds done" >&2
done
awk '
  function median(s,   a, k, i, j, t) {
    k = split(substr(s, 2), a, " ")
    for (i = 2; i <= k; i++) for (j = i; j > 1 && a[j-1]+0 > a[j]+0; j--) { t = a[j]; a[j] = a[j-1]; a[j-1] = t }
    return (k % 2) ? a[(k+1)/2] : (a[k/2] + a[k/2+1]) / 2
  }
  { for (i = 3; i <= NF; i++) {
      if ($i == "commits/s") c[$1] = c[$1] " " $(i-1)
      if ($i == "endtxn-ms/commit") e[$1] = e[$1] " " $(i-1)
    } }
  END {
    for (v in c) printf "%-6s median %8.1f commits/s  %6.2f ms in EndTransaction per commit  (runs:%s)\n", v, median(c[v]), median(e[v]), c[v]
    if (("before" in c) && ("after" in c)) printf "after / before = %.2f\n", median(c["after"]) / median(c["before"])
  }' "$out"
