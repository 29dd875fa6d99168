#!/usr/bin/env bash
# A 3-node cache-node cluster (N = 3) against a Redis Cluster of 3 masters with one replica each,
# both driven by redis-benchmark (SET and GET, 50 connections, 10,000 keys of 3 bytes, no
# pipelining), alternating rounds, medians with the spread.
#
#   ROUNDS=3 DURATION=8 bench/resp-cluster.sh
#
# cache-node: three processes on 127.0.0.1 (one event loop each, memory only), each taking a third
# of the connections (three redis-benchmark processes at once, throughput summed); run once with
# CONSISTENCY=quorum (SET and GET) and once with CONSISTENCY=one (GET). Redis: six redis-server
# processes (`--cluster-replicas 1`, no persistence) and one `redis-benchmark --cluster`.
# What each side promises differs: Redis Cluster acknowledges a write once the key's master has it
# and copies it to the replica afterwards (a failover can lose it); a quorum write here is
# acknowledged once two of the key's three replicas hold it, and a quorum read asks two replicas.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

DURATION=${DURATION:-8}
ROUNDS=${ROUNDS:-3}
HTTP_BASE=${HTTP_BASE:-18181}
PEER_BASE=${PEER_BASE:-19181}
RESP_BASE=${RESP_BASE:-16481}
REDIS_BASE=${REDIS_BASE:-17101}

ensure_tools
work=$(mktemp -d)
trap cleanup_cluster EXIT

# spread NAME TESTS: redis-benchmark against each node at once, 17 + 17 + 16 connections.
spread() {
    local name=$1 tests=$2 pids=()
    local requests=$((DURATION * 40000 / 3))
    for i in 0 1 2; do
        redis-benchmark -p $((RESP_BASE + i)) -c $((i == 2 ? 16 : 17)) -n "$requests" -t "$tests" -d 3 -r 10000 \
            --csv >"$work/$name.$i.csv" &
        pids+=($!)
    done
    wait "${pids[@]}"
}

for round in $(seq "$ROUNDS"); do
    start_cluster CONSISTENCY=quorum
    spread "quorum_r$round" set,get
    stop_cluster
    start_cluster CONSISTENCY=one
    spread "one_r$round" set,get
    stop_cluster

    start_redis_cluster 1
    redis-benchmark --cluster -p "$REDIS_BASE" -c 50 -n $((DURATION * 40000)) -t set,get -d 3 -r 10000 --csv \
        >"$work/redis_r$round.csv"
    stop_redis_cluster
done

python3 - "$work" "$ROUNDS" <<PY
$REPORT_HELPERS
rounds = range(1, int(sys.argv[2]) + 1)

def spread(name):
    """Three redis-benchmark runs at once: throughput summed, p50 the median, p99 the worst."""
    parts = [redis(f"{name}.{i}") for i in range(3)]
    return {t: (sum(p[t][0] for p in parts), median([p[t][1] for p in parts]), max(p[t][2] for p in parts))
            for t in parts[0]}

print(f"3 cache-nodes (N=3) against Redis Cluster (3 masters + 3 replicas), redis-benchmark c=50; median of {len(rounds)} alternating rounds")
header("")
compare("GET quorum", [spread(f"quorum_r{r}")["GET"] + (0,) for r in rounds], [redis(f"redis_r{r}")["GET"] for r in rounds])
compare("SET quorum", [spread(f"quorum_r{r}")["SET"] + (0,) for r in rounds], [redis(f"redis_r{r}")["SET"] for r in rounds])
compare("GET one", [spread(f"one_r{r}")["GET"] + (0,) for r in rounds], [redis(f"redis_r{r}")["GET"] for r in rounds])
compare("SET one", [spread(f"one_r{r}")["SET"] + (0,) for r in rounds], [redis(f"redis_r{r}")["SET"] for r in rounds])
PY
