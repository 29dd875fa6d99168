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

DURATION=${DURATION:-10}
NODE_PORT=${NODE_PORT:-18080}
REDIS_PORT=${REDIS_PORT:-16379}
LOOPS=${LOOPS:-"1 $(nproc)"}
NODE=.build/release/cache-node
SUDO=$([ "$(id -u)" = 0 ] || echo sudo)

for tool in wrk redis-server redis-benchmark; do
    if ! command -v "$tool" >/dev/null; then
        $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq wrk redis-server >/dev/null
        break
    fi
done
[ -x "$NODE" ] || swift build -c release >/dev/null

work=$(mktemp -d)
cleanup() {
    [ -n "${node_pid:-}" ] && kill "$node_pid" 2>/dev/null || true
    [ -n "${redis_pid:-}" ] && kill "$redis_pid" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# --- cache-node ---------------------------------------------------------------------------------
cat >"$work/put.lua" <<'LUA'
wrk.method = "PUT"
wrk.headers["Content-Type"] = "application/json"
counter = 0
request = function()
    counter = counter + 1
    return wrk.format(nil, "/put", nil, '{"key":"bench:' .. (counter % 10000) .. '","value":"xyz"}')
end
LUA

run_wrk() { # name connections url [script]
    local name=$1 connections=$2 url=$3 script=${4:-}
    wrk -t1 -c"$connections" -d"${DURATION}s" --latency ${script:+-s "$script"} "$url" >"$work/$name.wrk"
}

for loops in $LOOPS; do
    env LOG_LEVEL=warning PORT="$NODE_PORT" EVENT_LOOPS="$loops" "$NODE" >"$work/node.log" 2>&1 &
    node_pid=$!
    for _ in $(seq 100); do curl -sf "http://127.0.0.1:$NODE_PORT/health" >/dev/null && break; sleep 0.1; done
    curl -sf "http://127.0.0.1:$NODE_PORT/health" >/dev/null || { echo "cache-node did not start:"; cat "$work/node.log"; exit 1; }
    curl -sf -X PUT "http://127.0.0.1:$NODE_PORT/put" -d '{"key":"bench:hit","value":"xyz"}' >/dev/null
    run_wrk "loops${loops}_get_hit" 50 "http://127.0.0.1:$NODE_PORT/get/bench:hit"
    run_wrk "loops${loops}_get_miss" 50 "http://127.0.0.1:$NODE_PORT/get/bench:absent"
    run_wrk "loops${loops}_put" 50 "http://127.0.0.1:$NODE_PORT" "$work/put.lua"
    run_wrk "loops${loops}_get_hit_c10" 10 "http://127.0.0.1:$NODE_PORT/get/bench:hit"
    kill "$node_pid"; wait "$node_pid" 2>/dev/null || true; node_pid=
done

# --- redis-server ---------------------------------------------------------------------------------
redis-server --port "$REDIS_PORT" --save '' --appendonly no --daemonize no >"$work/redis.log" 2>&1 &
redis_pid=$!
for _ in $(seq 100); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
requests=$((DURATION * 100000))
redis-benchmark -p "$REDIS_PORT" -c 50 -n "$requests" -t set,get -d 3 -r 10000 --csv >"$work/redis_c50.csv"
redis-benchmark -p "$REDIS_PORT" -c 10 -n "$requests" -t get -d 3 -r 10000 --csv >"$work/redis_c10.csv"

# --- report ---------------------------------------------------------------------------------------
python3 - "$work" $LOOPS <<'PY'
import csv, re, sys, pathlib
work = pathlib.Path(sys.argv[1])
loops = sys.argv[2:]

def wrk(name):
    text = (work / f"{name}.wrk").read_text()
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    def pct(p):
        value, unit = re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)", text).groups()
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    return rps, pct(50), pct(99), int(errors.group(1)) if errors else 0

def redis(name):
    rows = {r["test"]: r for r in csv.DictReader((work / f"{name}.csv").open())}
    return {t: (float(r["rps"]), float(r["p50_latency_ms"]), float(r["p99_latency_ms"])) for t, r in rows.items()}

r50, r10 = redis("redis_c50"), redis("redis_c10")
rows = []
for n in loops:
    rows += [
        (f"loops={n} GET hit  (c=50)", wrk(f"loops{n}_get_hit"), r50["GET"]),
        (f"loops={n} GET miss (c=50)", wrk(f"loops{n}_get_miss"), r50["GET"]),
        (f"loops={n} PUT      (c=50)", wrk(f"loops{n}_put"), r50["SET"]),
        (f"loops={n} GET hit  (c=10)", wrk(f"loops{n}_get_hit_c10"), r10["GET"]),
    ]
print(f"{'cache-node':28} {'ops/s':>10} {'p50 ms':>8} {'p99 ms':>8} | {'redis ops/s':>11} {'p50 ms':>8} {'p99 ms':>8} | ratio")
for name, (rps, p50, p99, errors), (rrps, rp50, rp99) in rows:
    note = f"  ({errors} non-2xx)" if errors and "miss" not in name else ""
    print(f"{name:28} {rps:10.0f} {p50:8.3f} {p99:8.3f} | {rrps:11.0f} {rp50:8.3f} {rp99:8.3f} | {rps / rrps:5.2f}x{note}")
PY
