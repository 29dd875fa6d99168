#!/usr/bin/env bash
# PUT throughput and latency per WAL_SYNC mode against redis-server with the matching appendfsync,
# measured in the same run, and warm-restart time for 1M entries.
#
#   bench/wal.sh                      # 10 s per measurement, 1,000,000 entries for the restart
#   DURATION=30 ENTRIES=2000000 bench/wal.sh
#
# PUTs: wrk (1 thread, 50 connections) with 3-byte values over 10,000 keys; Redis:
# redis-benchmark -t set with the same shape and `appendonly yes`. Both write their logs under
# the same temporary directory. Restart: the node is filled with ENTRIES small entries, stopped,
# and started again; the figure is the time from start until /health answers 200, once with only
# the log to replay and once from a snapshot plus a short log tail.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

DURATION=${DURATION:-10}
ENTRIES=${ENTRIES:-1000000}
NODE_PORT=${NODE_PORT:-18081}
REDIS_PORT=${REDIS_PORT:-16380}

ensure_tools
work=$(mktemp -d -p "${BENCH_DIR:-/tmp}")
trap cleanup EXIT
write_put_script

for mode in none interval always; do
    rm -rf "$work/wal"
    start_node WAL_DIR="$work/wal" WAL_SYNC="$mode" WAL_SYNC_INTERVAL_MS=1000
    run_wrk "put_$mode" 50 "http://127.0.0.1:$NODE_PORT" "$work/put.lua"
    stop_node
done

requests=$((DURATION * 50000))
for fsync in no everysec always; do
    rm -rf "$work/redis-$fsync" && mkdir -p "$work/redis-$fsync"
    start_redis --appendonly yes --appendfsync "$fsync" --dir "$work/redis-$fsync"
    redis-benchmark -p "$REDIS_PORT" -c 50 -n "$requests" -t set -d 3 -r 10000 --csv >"$work/redis_$fsync.csv"
    stop_redis
done

# Warm restart: fill with ENTRIES distinct keys, restart, time until healthy.
cat >"$work/fill.lua" <<LUA
wrk.method = "PUT"
wrk.headers["Content-Type"] = "application/json"
counter = 0
request = function()
    counter = counter + 1
    return wrk.format(nil, "/put", nil, '{"key":"restart:' .. (counter % $ENTRIES) .. '","value":"value-' .. counter .. '"}')
end
LUA
for layout in log snapshot; do
    rm -rf "$work/wal"
    if [ "$layout" = log ]; then compact=(WAL_COMPACT_MIN_MB=100000); else compact=(WAL_COMPACT_MIN_MB=1 WAL_COMPACT_RATIO=1); fi
    start_node WAL_DIR="$work/wal" WAL_SYNC=none "${compact[@]}"
    # wrk runs by time, so stop it once the store holds every key.
    wrk -t1 -c50 -d600s -s "$work/fill.lua" "http://127.0.0.1:$NODE_PORT" >"$work/fill.wrk" &
    wrk_pid=$!
    entries=0
    while [ "$entries" -lt "$ENTRIES" ] && kill -0 "$wrk_pid" 2>/dev/null; do
        sleep 0.5
        entries=$(curl -s "http://127.0.0.1:$NODE_PORT/stats" | python3 -c 'import json,sys; print(json.load(sys.stdin)["entries"])')
    done
    kill "$wrk_pid" 2>/dev/null || true
    wait "$wrk_pid" 2>/dev/null || true
    sleep 2  # let a compaction started by the last writes finish
    stop_node
    start=$(date +%s.%N)
    start_node WAL_DIR="$work/wal" WAL_SYNC=none "${compact[@]}"
    seconds=$(python3 -c "print(f'{$(date +%s.%N) - $start:.2f}')")
    stop_node
    echo "$layout $entries $seconds $(du -sb "$work/wal" | cut -f1)" >>"$work/restart.txt"
done

python3 - "$work" <<PY
$REPORT_HELPERS
header("cache-node PUT vs redis SET (c=50)")
for mode, fsync in [("none", "no"), ("interval", "everysec"), ("always", "always")]:
    row(f"WAL_SYNC={mode} vs appendfsync {fsync}", wrk(f"put_{mode}"), redis(f"redis_{fsync}")["SET"])
print()
for line in (work / "restart.txt").read_text().splitlines():
    layout, entries, seconds, size = line.split()
    what = "log only" if layout == "log" else "snapshot + tail"
    print(f"warm restart, {what:15}: {int(entries):>9,} entries, {int(size) / 2**20:6.1f} MiB on disk, {float(seconds):5.2f} s until healthy")
PY
