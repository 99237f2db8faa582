#!/usr/bin/env bash
# Runs the same fixed-rate load (`weir bench compare`) against a fresh
# single-node `weir serve` (durable: every acks=all write waits for its
# fsync) as A and franz-go's in-memory kfake, in its own process, as B,
# in alternating rounds, and prints each metric per round, the medians and
# the ratio kfake / Weir. Any further arguments are `weir bench` flags.
#
#   scripts/bench-load-vs-kfake.sh RATE [ROUNDS] [DURATION] [weir bench flags...]
#
# e.g. scripts/bench-load-vs-kfake.sh 270000 3 20s --producers 2 --consumers 2
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -lt 1 ]; then
  echo "usage: $0 RATE [ROUNDS] [DURATION] [weir bench flags...]" >&2
  exit 2
fi
rate=$1
rounds=${2:-3}
duration=${3:-20s}
shift $(($# < 3 ? $# : 3))
dir=$(mktemp -d)
weir_pid=
cleanup() {
  exec 3>&- 2>/dev/null || true # kfake serves until its stdin closes
  if [ -n "$weir_pid" ]; then kill "$weir_pid" 2>/dev/null || true; wait "$weir_pid" 2>/dev/null || true; fi
  rm -rf "$dir"
}
trap cleanup EXIT
go build -o "$dir/weir" ./cmd/weir
go test -c -o "$dir/bench.test" ./internal/bench/

"$dir/weir" serve --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 --data "$dir/data" --log-level warn >"$dir/weir.out" 2>"$dir/weir.err" &
weir_pid=$!
mkfifo "$dir/kfake.in"
WEIR_BENCH_SERVE=kfake "$dir/bench.test" -test.run='^$' <"$dir/kfake.in" >"$dir/kfake.out" &
exec 3>"$dir/kfake.in"
for _ in $(seq 100); do
  [ -s "$dir/weir.out" ] && [ -s "$dir/kfake.out" ] && break
  sleep 0.1
done
weir_addr=$(sed -n 's/^weir serving on \([^,]*\),.*/\1/p' "$dir/weir.out")
kfake_addr=$(head -1 "$dir/kfake.out")
if [ -z "$weir_addr" ] || [ -z "$kfake_addr" ]; then
  echo "a server did not start: weir '$(cat "$dir/weir.out" "$dir/weir.err")' kfake '$(cat "$dir/kfake.out")'" >&2
  exit 1
fi
echo "A: weir $weir_addr (pid $weir_pid); B: kfake $kfake_addr; $(nproc) cores; $(uptime)" >&2
"$dir/weir" bench compare "$weir_addr" "$kfake_addr" --rate "$rate" --rounds "$rounds" --duration "$duration" "$@"
echo "after: $(uptime)" >&2
