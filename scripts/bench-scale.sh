#!/usr/bin/env bash
# Measures one `weir serve` holding many partitions and connections:
#
#  - creates PARTITIONS partitions (topics of 100 partitions each) and
#    reports the broker's resident memory and open file descriptors, and
#    how long a Metadata request for every topic takes (`weir topic list`);
#  - SIGKILLs the broker and reports the time from the start of a new
#    process on the same data to /readyz answering 200, then the same
#    after a clean stop (SIGTERM);
#  - opens CONNECTIONS idle client connections (each sends one
#    ApiVersions request and keeps the connection open) and reports how
#    many the broker took, its memory and descriptors with them held, and
#    whether a new client is still served.
#
#   scripts/bench-scale.sh [PARTITIONS] [CONNECTIONS]   (defaults: 10000, 9000)
#
# Each partition's active segment holds one descriptor, each connection
# one: PARTITIONS + CONNECTIONS must fit the open-file limit (`ulimit -n`),
# which the broker checks at start against max.connections.
set -euo pipefail
cd "$(dirname "$0")/.."
partitions=${1:-10000}
connections=${2:-9000}
dir=$(mktemp -d "${WEIR_BENCH_DIR:-/tmp}/weir-scale.XXXXXX")
pid=
trap '[ -n "$pid" ] && kill -9 "$pid" 2>/dev/null; rm -rf "$dir"' EXIT
go build -o "$dir/weir" ./cmd/weir
weir=$dir/weir
port=$((20000 + RANDOM % 10000))
admin=$((port + 1))
addr=127.0.0.1:$port
serve() {
	"$weir" serve --data "$dir/data" --listen "$addr" --admin-listen "127.0.0.1:$admin" >>"$dir/serve.log" 2>&1 &
	pid=$!
}
now() { date +%s.%N; }
ready() { until curl -sf "http://127.0.0.1:$admin/readyz" >/dev/null 2>&1; do sleep 0.02; done; }
usage() { echo "rss $(awk '/VmRSS/ {printf "%.0f MB", $2/1024}' /proc/$pid/status), descriptors $(ls /proc/$pid/fd | wc -l)"; }

serve
ready
topics=$(( (partitions + 99) / 100 ))
start=$(now)
for i in $(seq 1 "$topics"); do
	"$weir" topic create "scale-$i" --partitions 100 --brokers "$addr" >/dev/null
done
echo "created $((topics * 100)) partitions in $(echo "$(now) - $start" | bc) s; $(usage)"
start=$(now)
listed=$("$weir" topic list --brokers "$addr" | wc -l)
echo "metadata of all $listed topics: $(echo "$(now) - $start" | bc) s (weir topic list, a new client)"

kill -9 "$pid"; wait "$pid" 2>/dev/null || true
start=$(now); serve; ready
echo "after SIGKILL: ready in $(echo "$(now) - $start" | bc) s; $(usage)"
kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
start=$(now); serve; ready
echo "after a clean stop: ready in $(echo "$(now) - $start" | bc) s; $(usage)"

python3 - "$connections" "$port" "$dir/held" <<'PY' &
import socket, struct, sys, time, resource, os
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
n, port, flag = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
held, failed = [], {}
for i in range(n):
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        body = struct.pack(">hhih", 18, 0, i, 5) + b"scale"
        s.sendall(struct.pack(">i", len(body)) + body)
        size = struct.unpack(">i", s.recv(4, socket.MSG_WAITALL))[0]
        if len(s.recv(size, socket.MSG_WAITALL)) != size:
            raise OSError("short answer")
        held.append(s)
    except OSError as e:
        failed[type(e).__name__] = failed.get(type(e).__name__, 0) + 1
print(f"idle connections: {len(held)} of {n} answered and held; failures {failed or 'none'}", flush=True)
open(flag, "w").close()
time.sleep(3600)
PY
holder=$!
until [ -e "$dir/held" ]; do sleep 0.2; done
echo "with them held: $(usage)"
start=$(now)
if "$weir" topic list --brokers "$addr" >/dev/null 2>&1; then
	echo "a new client is served ($(echo "$(now) - $start" | bc) s)"
else
	echo "a new client is NOT served"
fi
kill "$holder" 2>/dev/null || true
grep -E "level=(WARN|ERROR)" "$dir/serve.log" | sed 's/^time=[^ ]* //' | sort | uniq -c | head -5 || true
