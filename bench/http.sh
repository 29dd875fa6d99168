#!/usr/bin/env bash
# HTTP throughput and latency of one cache-node against redis-server, measured in the same run,
# in alternating rounds (node, Redis, node, Redis, ...), reported as medians.
#
#   bench/http.sh                     # 3 rounds of 10 s per measurement
#   ROUNDS=5 DURATION=20 bench/http.sh
#   LOOPS=2 bench/http.sh             # the node's event loops (default 1, the fair match for Redis)
#
# Node: wrk (1 thread), GET of one stored key and PUT of 10,000 rotating keys with 3-byte values,
# 50 connections, and GET with 10 connections for the latency figure. Redis: redis-benchmark
# (1 thread) GET and SET with the same shapes. Neither side pipelines. The two sides use different
# load tools (wrk speaks HTTP, redis-benchmark RESP), so the ratio also measures the protocols.
# Needs a release build (`make release`); installs wrk and redis-server from Debian when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-3}
NODE_PORT=${NODE_PORT:-18080}
REDIS_PORT=${REDIS_PORT:-16379}
LOOPS=${LOOPS:-1}

ensure_tools
work=$(mktemp -d)
trap cleanup EXIT
write_put_script

requests=$((DURATION * 100000))
for round in $(seq "$ROUNDS"); do
    start_node EVENT_LOOPS="$LOOPS"
    curl -sf -X PUT "http://127.0.0.1:$NODE_PORT/put" -d '{"key":"bench:hit","value":"xyz"}' >/dev/null
    run_wrk "node_get_r$round" 50 "http://127.0.0.1:$NODE_PORT/get/bench:hit"
    run_wrk "node_put_r$round" 50 "http://127.0.0.1:$NODE_PORT" "$work/put.lua"
    run_wrk "node_get_c10_r$round" 10 "http://127.0.0.1:$NODE_PORT/get/bench:hit"
    stop_node

    start_redis --appendonly no
    redis-benchmark -p "$REDIS_PORT" -c 50 -n "$requests" -t get,set -d 3 -r 10000 --csv >"$work/redis_c50_r$round.csv"
    redis-benchmark -p "$REDIS_PORT" -c 10 -n "$requests" -t get -d 3 -r 10000 --csv >"$work/redis_c10_r$round.csv"
    stop_redis
done

python3 - "$work" "$ROUNDS" "$LOOPS" <<PY
$REPORT_HELPERS
rounds = int(sys.argv[2])
print(f"cache-node (EVENT_LOOPS={sys.argv[3]}) against redis-server, median of {rounds} alternating rounds")
header("")
compare("GET hit (c=50)", [wrk(f"node_get_r{r}") for r in range(1, rounds + 1)],
        [redis(f"redis_c50_r{r}")["GET"] for r in range(1, rounds + 1)])
compare("PUT vs SET (c=50)", [wrk(f"node_put_r{r}") for r in range(1, rounds + 1)],
        [redis(f"redis_c50_r{r}")["SET"] for r in range(1, rounds + 1)])
compare("GET hit (c=10)", [wrk(f"node_get_c10_r{r}") for r in range(1, rounds + 1)],
        [redis(f"redis_c10_r{r}")["GET"] for r in range(1, rounds + 1)])
PY
