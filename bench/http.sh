#!/usr/bin/env bash
# HTTP throughput and latency of one cache-node against redis-server, measured in the same run.
#
#   bench/http.sh                     # 10 s per measurement
#   DURATION=30 bench/http.sh         # longer runs
#   LOOPS="1 2 4" bench/http.sh       # event-loop counts to measure (default: 1 and one per core)
#
# Load generators: wrk (1 thread) for the node, redis-benchmark (1 thread) for Redis, both with 50
# connections for throughput and 10 for the p99 figure, no pipelining. The node is measured once per
# event-loop count: on a 2-core machine the load generator needs a core too, so one loop is the fair
# match for single-threaded Redis. Needs a release build (`make release`); installs wrk and
# redis-server from Debian when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

DURATION=${DURATION:-10}
NODE_PORT=${NODE_PORT:-18080}
REDIS_PORT=${REDIS_PORT:-16379}
LOOPS=${LOOPS:-"1 $(nproc)"}

ensure_tools
work=$(mktemp -d)
trap cleanup EXIT
write_put_script

for loops in $LOOPS; do
    start_node EVENT_LOOPS="$loops"
    curl -sf -X PUT "http://127.0.0.1:$NODE_PORT/put" -d '{"key":"bench:hit","value":"xyz"}' >/dev/null
    run_wrk "loops${loops}_get_hit" 50 "http://127.0.0.1:$NODE_PORT/get/bench:hit"
    run_wrk "loops${loops}_get_miss" 50 "http://127.0.0.1:$NODE_PORT/get/bench:absent"
    run_wrk "loops${loops}_put" 50 "http://127.0.0.1:$NODE_PORT" "$work/put.lua"
    run_wrk "loops${loops}_get_hit_c10" 10 "http://127.0.0.1:$NODE_PORT/get/bench:hit"
    stop_node
done

start_redis --appendonly no
requests=$((DURATION * 100000))
redis-benchmark -p "$REDIS_PORT" -c 50 -n "$requests" -t set,get -d 3 -r 10000 --csv >"$work/redis_c50.csv"
redis-benchmark -p "$REDIS_PORT" -c 10 -n "$requests" -t get -d 3 -r 10000 --csv >"$work/redis_c10.csv"
stop_redis

python3 - "$work" $LOOPS <<PY
$REPORT_HELPERS
loops = sys.argv[2:]
r50, r10 = redis("redis_c50"), redis("redis_c10")
header("cache-node")
for n in loops:
    row(f"loops={n} GET hit  (c=50)", wrk(f"loops{n}_get_hit"), r50["GET"])
    row(f"loops={n} GET miss (c=50)", wrk(f"loops{n}_get_miss")[:3] + (0,), r50["GET"])
    row(f"loops={n} PUT      (c=50)", wrk(f"loops{n}_put"), r50["SET"])
    row(f"loops={n} GET hit  (c=10)", wrk(f"loops{n}_get_hit_c10"), r10["GET"])
PY
