#!/usr/bin/env bash
# PUT throughput and latency per WAL_SYNC mode against redis-server with the matching appendfsync,
# in alternating rounds (medians), and warm-restart time for 1M entries.
#
#   bench/wal.sh                      # 3 rounds of 10 s per measurement, 1,000,000 entries for the restart
#   ROUNDS=5 DURATION=20 ENTRIES=2000000 bench/wal.sh
#   MODES="interval" bench/wal.sh     # only some modes; RESTART=0 skips the warm restart
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
ROUNDS=${ROUNDS:-3}
ENTRIES=${ENTRIES:-1000000}
MODES=${MODES:-"none interval always"}
RESTART=${RESTART:-1}
NODE_PORT=${NODE_PORT:-18081}
REDIS_PORT=${REDIS_PORT:-16380}

ensure_tools
work=$(mktemp -d -p "${BENCH_DIR:-/tmp}")
trap cleanup EXIT
write_put_script

declare -A fsync_of=([none]=no [interval]=everysec [always]=always)
requests=$((DURATION * 50000))
for round in $(seq "$ROUNDS"); do
    for mode in $MODES; do
        rm -rf "$work/wal"
        start_node WAL_DIR="$work/wal" WAL_SYNC="$mode" WAL_SYNC_INTERVAL_MS=1000
        run_wrk "put_${mode}_r$round" 50 "http://127.0.0.1:$NODE_PORT" "$work/put.lua"
        stop_node
        fsync=${fsync_of[$mode]}
        rm -rf "$work/redis" && mkdir -p "$work/redis"
        start_redis --appendonly yes --appendfsync "$fsync" --dir "$work/redis"
        redis-benchmark -p "$REDIS_PORT" -c 50 -n "$requests" -t set -d 3 -r 10000 --csv >"$work/redis_${mode}_r$round.csv"
        stop_redis
    done
done

if [ "$RESTART" = 1 ]; then
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
        start_node WAL_DIR="$work/wal" WAL_SYNC=none MAX_MEMORY_MB=0 "${compact[@]}"
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
        start_node WAL_DIR="$work/wal" WAL_SYNC=none MAX_MEMORY_MB=0 "${compact[@]}"
        seconds=$(python3 -c "print(f'{$(date +%s.%N) - $start:.2f}')")
        stop_node
        echo "$layout $entries $seconds $(du -sb "$work/wal" | cut -f1)" >>"$work/restart.txt"
    done
fi

python3 - "$work" "$ROUNDS" "$MODES" <<PY
$REPORT_HELPERS
rounds = range(1, int(sys.argv[2]) + 1)
fsync_of = {"none": "no", "interval": "everysec", "always": "always"}
print(f"cache-node PUT against redis SET (c=50), median of {len(rounds)} alternating rounds")
header("")
for mode in (sys.argv[3].split() if len(rounds) else []):
    compare(f"WAL_SYNC={mode} vs appendfsync {fsync_of[mode]}", [wrk(f"put_{mode}_r{r}") for r in rounds],
            [redis(f"redis_{mode}_r{r}")["SET"] for r in rounds])
restart = work / "restart.txt"
if restart.exists():
    print()
    for line in restart.read_text().splitlines():
        layout, entries, seconds, size = line.split()
        what = "log only" if layout == "log" else "snapshot + tail"
        print(f"warm restart, {what:15}: {int(entries):>9,} entries, {int(size) / 2**20:6.1f} MiB on disk, {float(seconds):5.2f} s until healthy")
PY
