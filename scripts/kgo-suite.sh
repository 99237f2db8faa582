#!/usr/bin/env bash
# Runs franz-go's own kgo integration tests (pkg/kgo of the franz-go version
# in go.mod) against a Weir cluster of three `weir serve` processes on
# loopback, every node a voter of the metadata quorum, and prints which
# tests passed, failed and were skipped.
#
#   scripts/kgo-suite.sh [RUN-REGEX [GO-TEST-FLAG...]]
#
# RUN-REGEX is go test's -run (default: every test); further arguments go
# to go test as they are (e.g. -count=3). Environment:
#   KGO_SUITE_NODES    nodes to start (default 3; 1 starts `weir serve`
#                      alone, a single node without a quorum, to compare)
#   KGO_SUITE_TIMEOUT  go test -timeout (default 90m)
#   KGO_SUITE_LOG_LEVEL  the nodes' --log-level (default info)
#   KGO_SUITE_REV      build Weir from this commit as committed (e.g. HEAD)
#                      instead of the working tree
#   KGO_SUITE_OUT      where node logs and test output are kept (default a
#                      new /tmp/kgo-suite.* directory)
#   KGO_TEST_RF        the suite's replication factor (default: the number
#                      of nodes, at most 3, as franz-go's own default is 3)
# Other KGO_* variables the suite reads (KGO_TEST_RECORDS, KGO_LOG_LEVEL,
# KGO_TEST_UNSAFE, KGO_TEST_MAX_TOPIC_PARTS, KGO_TEST_CHAOS, ...) are passed
# through; KGO_SEEDS is set to every node's listener.
#
# Weir is built from the working tree unless KGO_SUITE_REV names a commit.
# franz-go's module (its go.mod, go.sum and pkg/) is copied from the module
# cache, which is read-only, to a temporary directory and tested there. Data directories are removed at
# exit; the node logs (node-N.log), go test's JSON events (test.json), its
# text output (test.log) and the summary (summary.txt) stay in KGO_SUITE_OUT.
set -euo pipefail
cd "$(dirname "$0")/.."

run=${1:-}
if [ $# -gt 0 ]; then shift; fi
nodes=${KGO_SUITE_NODES:-3}
rf=${KGO_TEST_RF:-$((nodes < 3 ? nodes : 3))}
timeout=${KGO_SUITE_TIMEOUT:-90m}
loglevel=${KGO_SUITE_LOG_LEVEL:-info}
out=${KGO_SUITE_OUT:-$(mktemp -d /tmp/kgo-suite.XXXXXX)}
mkdir -p "$out"
out=$(cd "$out" && pwd)
work=$(mktemp -d /tmp/kgo-suite-work.XXXXXX)

pids=()
stop_cluster() {
  local pid i
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do
    for i in $(seq 100); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  pids=()
}
cleanup() {
  stop_cluster
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "output in $out" >&2

# Weir, from the working tree, or from commit KGO_SUITE_REV as committed.
if [ -n "${KGO_SUITE_REV:-}" ]; then
  commit=$(git rev-parse --short "$KGO_SUITE_REV^{commit}")
  mkdir -p "$work/weir-src"
  git archive "$commit" | tar -x -C "$work/weir-src"
  rev="$commit (as committed)"
  echo "building weir at $rev" >&2
  (cd "$work/weir-src" && go build -o "$work/weir" ./cmd/weir)
else
  rev=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
  if [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then rev="$rev (working tree with uncommitted changes)"; fi
  echo "building weir at $rev" >&2
  go build -o "$work/weir" ./cmd/weir
fi

# franz-go's source for the version Weir requires.
ver=$(go list -m -f '{{.Version}}' github.com/twmb/franz-go)
moddir=$(go mod download -json "github.com/twmb/franz-go@$ver" | jq -r .Dir)
src=$work/franz-go
mkdir -p "$src"
cp -r "$moddir/go.mod" "$moddir/go.sum" "$moddir/pkg" "$src/"
chmod -R u+w "$src"

# A small helper in the copied module: free loopback ports, and a wait until
# every node's Metadata lists all the brokers and the same controller.
mkdir -p "$src/cmd/kgosuite"
cat >"$src/cmd/kgosuite/main.go" <<'EOF'
package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"sort"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func main() {
	switch os.Args[1] {
	case "ports": // ports N: N free loopback ports, held together while chosen
		n, _ := strconv.Atoi(os.Args[2])
		var ls []net.Listener
		for range n {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
			ls = append(ls, l)
			fmt.Println(l.Addr().(*net.TCPAddr).Port)
		}
		for _, l := range ls {
			l.Close()
		}
	case "wait": // wait SECONDS BROKERS ADDR...
		secs, _ := strconv.Atoi(os.Args[2])
		want, _ := strconv.Atoi(os.Args[3])
		addrs := os.Args[4:]
		deadline := time.Now().Add(time.Duration(secs) * time.Second)
		var last string
		for {
			ok, state := check(addrs, want)
			if ok {
				fmt.Println(state)
				return
			}
			last = state
			if time.Now().After(deadline) {
				fmt.Fprintln(os.Stderr, "cluster not ready:", last)
				os.Exit(1)
			}
			time.Sleep(500 * time.Millisecond)
		}
	}
}

func check(addrs []string, want int) (bool, string) {
	controller := int32(-2)
	var state string
	for _, addr := range addrs {
		cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.RequestRetries(0))
		if err != nil {
			return false, err.Error()
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		resp, err := kmsg.NewPtrMetadataRequest().RequestWith(ctx, cl.SeedBrokers()[0])
		cancel()
		cl.Close()
		if err != nil {
			return false, fmt.Sprintf("%s: %v", addr, err)
		}
		var ids []int
		for _, b := range resp.Brokers {
			ids = append(ids, int(b.NodeID))
		}
		sort.Ints(ids)
		state += fmt.Sprintf("%s: brokers %v controller %d; ", addr, ids, resp.ControllerID)
		if len(resp.Brokers) != want || resp.ControllerID < 0 {
			return false, state
		}
		if controller != -2 && resp.ControllerID != controller {
			return false, state
		}
		controller = resp.ControllerID
	}
	return true, state
}
EOF
(cd "$src" && go build -o "$work/kgosuite" ./cmd/kgosuite)

# The cluster.
mapfile -t ports < <("$work/kgosuite" ports $((2 * nodes)))
addrs=() voters=()
for i in $(seq "$nodes"); do
  addrs+=("127.0.0.1:${ports[$((2 * i - 2))]}")
  voters+=("$i@127.0.0.1:${ports[$((2 * i - 1))]}")
done
voterlist=$(IFS=,; echo "${voters[*]}")
for i in $(seq "$nodes"); do
  : >"$out/node-$i.log"
  if [ "$nodes" -eq 1 ]; then
    "$work/weir" serve --listen "${addrs[0]}" --data "$work/node-1" --log-level "$loglevel" \
      >>"$out/node-1.log" 2>&1 &
  else
    "$work/weir" serve --node-id "$i" --listen "${addrs[$((i - 1))]}" --data "$work/node-$i" \
      --controller-listen "${voters[$((i - 1))]#*@}" --voters "$voterlist" --log-level "$loglevel" \
      >>"$out/node-$i.log" 2>&1 &
  fi
  pids+=($!)
done
echo "started $nodes node(s): ${addrs[*]}" >&2
"$work/kgosuite" wait 60 "$nodes" "${addrs[@]}" >&2

seeds=$(IFS=,; echo "${addrs[*]}")
echo "go test -count=1 -timeout $timeout -run '${run}' $* ./pkg/kgo/ (franz-go $ver, KGO_SEEDS=$seeds KGO_TEST_RF=$rf)" >&2
start=$(date +%s)
set +e
(cd "$src" && KGO_SEEDS=$seeds KGO_TEST_RF=$rf \
  go test -json -count=1 -timeout "$timeout" -run "$run" "$@" ./pkg/kgo/) >"$out/test.json" 2>"$out/test.stderr"
status=$?
set -e
elapsed=$(($(date +%s) - start))

# Did every node survive the run?
alive=()
for i in $(seq "$nodes"); do
  if kill -0 "${pids[$((i - 1))]}" 2>/dev/null; then alive+=("node $i up"); else alive+=("node $i EXITED"); fi
done
stop_cluster

jq -r 'select(.Action == "output") | .Output' "$out/test.json" >"$out/test.log" 2>/dev/null || true
cat "$out/test.stderr" >>"$out/test.log"

# Summary, per test (and subtest) name: its runs (more than one with
# -count) and their results. A name failed if any run failed; a run that
# started but has no result did not finish (the binary panicked or timed
# out); a name is skipped if every run was.
jq -rs '
  [ .[] | select(.Test != null and (.Action == "run" or .Action == "pass" or .Action == "fail" or .Action == "skip")) ]
  | group_by(.Test) | .[]
  | { test: .[0].Test,
      runs: (map(select(.Action == "run")) | length),
      pass: (map(select(.Action == "pass")) | length),
      fail: (map(select(.Action == "fail")) | length),
      skip: (map(select(.Action == "skip")) | length),
      elapsed: (map(.Elapsed // 0) | max) }
  | .unfinished = ([.runs - .pass - .fail - .skip, 0] | max)
  | .result = (if .fail > 0 then "fail" elif .unfinished > 0 then "unfinished"
               elif .skip == .runs then "skip" elif .pass + .skip == .runs then "pass" else "unfinished" end)
  | "\(.result)\t\(.test)\t\(.runs)\t\(.pass)\t\(.fail)\t\(.skip)\t\(.unfinished)\t\(.elapsed)"
' "$out/test.json" 2>/dev/null | sort -t$'\t' -k2,2 >"$out/results.tsv" || true

{
  echo "weir $rev, $nodes node(s), franz-go $ver pkg/kgo, -run '${run}' $*, ${elapsed}s, go test exit $status; ${alive[*]}"
  for scope in top sub; do
    if [ $scope = top ]; then sel='$2 !~ /\//'; label="tests"; else sel='$2 ~ /\//'; label="subtests"; fi
    awk -F'\t' "$sel" "$out/results.tsv" | awk -F'\t' -v label="$label" '
      { n[$1]++; runs += $3; p += $4; f += $5; s += $6; u += $7 }
      END {
        printf "%s: %d passed, %d failed, %d skipped, %d unfinished", label, n["pass"], n["fail"], n["skip"], n["unfinished"]
        if (runs > n["pass"] + n["fail"] + n["skip"] + n["unfinished"]) printf " (runs: %d passed, %d failed, %d skipped, %d unfinished)", p, f, s, u
        printf "\n"
      }'
  done
  for r in fail unfinished skip; do
    awk -F'\t' -v r="$r" '$1 == r {
        if ($3 > 1) printf "%s %s (%d of %d runs failed, %d unfinished; longest %ss)\n", toupper(r), $2, $5, $3, $7, $8
        else printf "%s %s (%ss)\n", toupper(r), $2, $8
      }' "$out/results.tsv" |
      while read -r line; do
        echo "$line"
        # what the test reported: its first file:line messages
        t=$(echo "$line" | cut -d' ' -f2)
        jq -r --arg t "$t" 'select(.Test == $t and .Action == "output") | .Output' "$out/test.json" |
          grep -E '^ +[A-Za-z0-9_]+\.go:[0-9]+: ' | grep -v ' completed in ' | head -3 | sed -E 's/^ +/    /' | cut -c1-300 || true
      done
  done
  grep -E '^(panic:|FAIL|ok  )' "$out/test.log" | head -5 || true
} | tee "$out/summary.txt"
echo "node logs, test.json, test.log and summary.txt in $out" >&2
exit "$status"
