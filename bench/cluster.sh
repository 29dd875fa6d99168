#!/usr/bin/env bash
# A 3-node cache-node cluster (N = 3, quorum reads and writes) against a 3-master Redis Cluster on
# the same machine, in alternating rounds (cache, Redis, cache, ...), reported as medians.
#
#   bench/cluster.sh                       # 3 rounds of 10 s per measurement
#   ROUNDS=5 DURATION=20 bench/cluster.sh
#
# cache-node: three processes on 127.0.0.1 (one event loop each, no WAL_DIR: memory only, as the
# Redis side runs without persistence), 10,000 keys of 3-byte values. Load from wrk: PUT and GET at
# `quorum` with 50 connections spread over the three nodes (three wrk processes, one thread each;
# throughput summed, p50 the median of the three, p99 the worst), and GET with 10 connections to one
# node for the latency figure. Then the same PUT and GET loads from cache-bench, this project's load
# tool, through the Swift client (CacheClient: 50 callers, each call sent to the key's first owner).
# Redis: redis-benchmark --cluster (one thread) SET and GET with the same shapes. Neither side pipelines. The load tools differ (wrk speaks HTTP, redis-benchmark
# RESP), and so do the guarantees: Redis Cluster acknowledges a write once its one master has it
# (replication is asynchronous, and here there are no replicas at all); cache-node acknowledges a
# quorum write once two of the key's three replicas hold it, and a quorum read asks the replicas too.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-3}
HTTP_BASE=${HTTP_BASE:-18081}
PEER_BASE=${PEER_BASE:-19081}
REDIS_BASE=${REDIS_BASE:-17001}
NODE_PORT=$HTTP_BASE

ensure_tools
BENCH=${BENCH:-.build/release/cache-bench}
swift build -c release --product cache-bench >/dev/null
work=$(mktemp -d)
trap cleanup_cluster EXIT

cat >"$work/put.lua" <<'LUA'
wrk.method = "PUT"
wrk.headers["Content-Type"] = "application/json"
counter = 0
request = function()
    counter = counter + 1
    return wrk.format(nil, "/put?consistency=quorum", nil, '{"key":"bench:' .. (counter % 10000) .. '","value":"xyz"}')
end
LUA
cat >"$work/get.lua" <<'LUA'
counter = 0
request = function()
    counter = counter + 1
    return wrk.format("GET", "/get/bench:" .. (counter % 10000) .. "?consistency=quorum")
end
LUA

# wrk_spread NAME SCRIPT: 50 connections over the three nodes, three wrk processes at once.
wrk_spread() {
    local name=$1 script=$2 pids=()
    for i in 0 1 2; do
        local connections=$((i == 0 ? 18 : 16))
        wrk -t1 -c"$connections" -d"${DURATION}s" --latency -s "$script" "http://127.0.0.1:$((HTTP_BASE + i))" \
            >"$work/$name.$i.wrk" &
        pids+=($!)
    done
    wait "${pids[@]}"
}

requests=$((DURATION * 50000))
for round in $(seq "$ROUNDS"); do
    start_cluster
    wrk_spread "node_put_r$round" "$work/put.lua"   # also stores the 10,000 keys the GETs read
    wrk_spread "node_get_r$round" "$work/get.lua"
    wrk -t1 -c10 -d"${DURATION}s" --latency -s "$work/get.lua" "http://127.0.0.1:$HTTP_BASE" >"$work/node_get_c10_r$round.wrk"
    nodes="127.0.0.1:$HTTP_BASE,127.0.0.1:$((HTTP_BASE + 1)),127.0.0.1:$((HTTP_BASE + 2))"
    for shape in put:0:1 get:1:0; do
        IFS=: read -r name reads writes <<<"$shape"
        "$BENCH" --nodes "$nodes" --duration "$DURATION" --warmup 1 --keys 10000 --value-size 3 \
            --ratio "$reads:$writes" --consistency quorum --concurrency 50 --json --no-progress \
            >"$work/bench_${name}_r$round.json"
    done
    stop_cluster

    start_redis_cluster 0
    redis-benchmark --cluster -p "$REDIS_BASE" -c 50 -n "$requests" -t set,get -d 3 -r 10000 --csv \
        >"$work/redis_c50_r$round.csv"
    redis-benchmark --cluster -p "$REDIS_BASE" -c 10 -n "$requests" -t get -d 3 -r 10000 --csv \
        >"$work/redis_c10_r$round.csv"
    stop_redis_cluster
done

python3 - "$work" "$ROUNDS" <<PY
$REPORT_HELPERS
rounds = range(1, int(sys.argv[2]) + 1)

def spread(name):
    """Three wrk runs at once: throughput summed, p50 the median, p99 the worst, errors summed."""
    parts = [wrk(f"{name}.{i}") for i in range(3)]
    return (sum(p[0] for p in parts), median([p[1] for p in parts]), max(p[2] for p in parts), sum(p[3] for p in parts))

print(f"3-node cache-node cluster (N=3, quorum) against a 3-master Redis Cluster, median of {len(rounds)} alternating rounds")
header("")
compare("PUT quorum vs SET (c=50)", [spread(f"node_put_r{r}") for r in rounds], [redis(f"redis_c50_r{r}")["SET"] for r in rounds])
compare("GET quorum vs GET (c=50)", [spread(f"node_get_r{r}") for r in rounds], [redis(f"redis_c50_r{r}")["GET"] for r in rounds])
compare("GET quorum vs GET (c=10)", [wrk(f"node_get_c10_r{r}") for r in rounds], [redis(f"redis_c10_r{r}")["GET"] for r in rounds])

def bench(name):
    """cache-bench's JSON: throughput, p50, p99 (ms), errors and timeouts."""
    import json
    total = json.load(open(f"{sys.argv[1]}/{name}.json"))["operations"]["total"]
    return (total["ops_per_second"], total["latency_ms"]["p50"], total["latency_ms"]["p99"], total["errors"] + total["timeouts"])

print("the same loads from cache-bench (Swift client, calls sent to each key's first owner)")
compare("cache-bench PUT quorum vs SET (c=50)", [bench(f"bench_put_r{r}") for r in rounds], [redis(f"redis_c50_r{r}")["SET"] for r in rounds])
compare("cache-bench GET quorum vs GET (c=50)", [bench(f"bench_get_r{r}") for r in rounds], [redis(f"redis_c50_r{r}")["GET"] for r in rounds])

# The client against wrk: both load the same cluster within a round, so the ratio is taken per
# round, and the median of those reported (the aim of issue 17: at least 0.7x).
print("cache-bench (CacheClient) against wrk on the same cluster, per round and median")
for name, shape in (("PUT", "put"), ("GET", "get")):
    ratios = [bench(f"bench_{shape}_r{r}")[0] / spread(f"node_{shape}_r{r}")[0] for r in rounds]
    print(f"  {name}: {' '.join(f'{x:.2f}x' for x in ratios)}  median {median(ratios):.2f}x")
PY
