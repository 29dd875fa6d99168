#!/usr/bin/env bash
# Bytes per entry of cache-node against redis-server, measured in the same run: N distinct entries
# of 12-byte keys and 100-byte values are loaded into each, and the growth of memory is divided by
# N, for each N in SIZES. Several sizes, because both sides keep a hash table that doubles: right
# after a doubling a table costs twice what it costs just before one, and the two tables double at
# different counts (the node's at 7/8 full, Redis's at full), so one size alone flatters one side.
#
#   bench/memory.sh                               # 250,000 500,000 750,000 and 1,000,000 entries
#   SIZES=500000 bench/memory.sh
#
# Node: growth of the process's resident memory (VmRSS) and of jemalloc's allocated bytes (from
# /stats). Redis: growth of `used_memory` (its allocator's count, the figure Redis itself reports)
# and of its resident memory. Loading: wrk PUTs for the node, `redis-cli --pipe` for Redis.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

SIZES=${SIZES:-${ENTRIES:-250000 500000 750000 1000000}}
NODE_PORT=${NODE_PORT:-18082}
REDIS_PORT=${REDIS_PORT:-16381}

ensure_tools
work=$(mktemp -d)
trap cleanup EXIT

rss() { awk '/VmRSS/{print $2 * 1024}' "/proc/$1/status"; }
allocated() { curl -s "http://127.0.0.1:$NODE_PORT/stats" | python3 -c 'import json,sys; print(json.load(sys.stdin)["bytes"]["jemalloc_allocated"])'; }
entries() { curl -s "http://127.0.0.1:$NODE_PORT/stats" | python3 -c 'import json,sys; print(json.load(sys.stdin)["entries"])'; }

# measure ENTRIES: loads each side with ENTRIES entries and appends its figures to $work/results.
measure() {
    local ENTRIES=$1
    # Keys key:00000000 … (12 bytes), values of 100 bytes.
    cat >"$work/load.lua" <<LUA
wrk.method = "PUT"
counter = 0
value = string.rep("v", 100)
request = function()
    counter = (counter + 1) % $ENTRIES
    return wrk.format(nil, "/put", nil, string.format('{"key":"key:%08d","value":"%s"}', counter, value))
end
LUA

    start_node MAX_MEMORY_MB=0 EVENT_LOOPS=1
    sleep 1
    node_rss_before=$(rss "$node_pid")
    node_allocated_before=$(allocated)
    wrk -t1 -c20 -d600s -s "$work/load.lua" "http://127.0.0.1:$NODE_PORT" >"$work/load.wrk" &
    wrk_pid=$!
    while [ "$(entries)" -lt "$ENTRIES" ] && kill -0 "$wrk_pid" 2>/dev/null; do sleep 0.5; done
    kill "$wrk_pid" 2>/dev/null || true
    wait "$wrk_pid" 2>/dev/null || true
    sleep 1
    node_entries=$(entries)
    node_rss_after=$(rss "$node_pid")
    node_allocated_after=$(allocated)
    stop_node

    start_redis --appendonly no
    redis_used_before=$(redis-cli -p "$REDIS_PORT" info memory | awk -F: '/^used_memory:/{print $2}' | tr -d '\r')
    redis_rss_before=$(rss "$redis_pid")
    python3 - "$ENTRIES" <<'PY' | redis-cli -p "$REDIS_PORT" --pipe >/dev/null
import sys
value = "v" * 100
out = sys.stdout.buffer
for index in range(int(sys.argv[1])):
    key = f"key:{index:08d}"
    out.write(f"*3\r\n$3\r\nSET\r\n${len(key)}\r\n{key}\r\n${len(value)}\r\n{value}\r\n".encode())
PY
    redis_keys=$(redis-cli -p "$REDIS_PORT" dbsize | tr -d '\r')
    redis_used_after=$(redis-cli -p "$REDIS_PORT" info memory | awk -F: '/^used_memory:/{print $2}' | tr -d '\r')
    redis_rss_after=$(rss "$redis_pid")
    stop_redis

    python3 - >>"$work/results" <<PY
n_node, n_redis = $node_entries, $redis_keys
node_rss = ($node_rss_after - $node_rss_before) / n_node
node_alloc = ($node_allocated_after - $node_allocated_before) / n_node
redis_used = ($redis_used_after - $redis_used_before) / n_redis
redis_rss = ($redis_rss_after - $redis_rss_before) / n_redis
print(f"{n_node:,} entries in cache-node, {n_redis:,} keys in redis (12-byte keys, 100-byte values)")
print(f"cache-node: {node_rss:6.1f} bytes/entry of resident memory, {node_alloc:6.1f} of jemalloc allocated")
print(f"redis:      {redis_rss:6.1f} bytes/entry of resident memory, {redis_used:6.1f} of used_memory")
print(f"ratio (resident, node / redis used_memory): {node_rss / redis_used:.2f}x;"
      f" (allocated / used_memory): {node_alloc / redis_used:.2f}x; (resident / resident): {node_rss / redis_rss:.2f}x")
print(f"RESULT {n_node} {node_rss:.1f} {node_alloc:.1f} {redis_used:.1f} {redis_rss:.1f}")
PY
}

for size in $SIZES; do measure "$size"; done
grep -v '^RESULT' "$work/results"
python3 - "$work/results" <<'PY'
import statistics, sys
rows = [line.split()[1:] for line in open(sys.argv[1]) if line.startswith("RESULT")]
print()
print("| entries | node resident B/entry | node allocated | Redis used_memory | resident / used_memory | allocated / used_memory |")
print("| ---: | ---: | ---: | ---: | ---: | ---: |")
ratios = []
for n, rss, alloc, used, _ in rows:
    n, rss, alloc, used = int(n), float(rss), float(alloc), float(used)
    ratios.append(rss / used)
    print(f"| {n:,} | {rss:.1f} | {alloc:.1f} | {used:.1f} | {rss / used:.2f}x | {alloc / used:.2f}x |")
print(f"resident / used_memory over {len(rows)} sizes: median {statistics.median(ratios):.2f}x, from {min(ratios):.2f}x to {max(ratios):.2f}x")
PY
