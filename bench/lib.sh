# Shared by the bench scripts: tools, a node under test, wrk runs and their parsing.
# Expects: NODE_PORT, DURATION, and a `work` directory variable set by the caller.

NODE=${NODE:-.build/release/cache-node}
SUDO=$([ "$(id -u)" = 0 ] || echo sudo)

ensure_tools() {
    for tool in wrk redis-server redis-benchmark curl; do
        if ! command -v "$tool" >/dev/null; then
            $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq wrk redis-server curl >/dev/null
            break
        fi
    done
    [ -x "$NODE" ] || swift build -c release >/dev/null
}

# start_node KEY=VALUE...: starts cache-node on NODE_PORT with these settings and waits for health.
start_node() {
    env LOG_LEVEL=warning PORT="$NODE_PORT" "$@" "$NODE" >"$work/node.log" 2>&1 &
    node_pid=$!
    for _ in $(seq 600); do curl -sf "http://127.0.0.1:$NODE_PORT/health" >/dev/null && return 0; sleep 0.05; done
    echo "cache-node did not start:"; cat "$work/node.log"; exit 1
}

stop_node() {
    [ -n "${node_pid:-}" ] || return 0
    kill "$node_pid" 2>/dev/null || true
    wait "$node_pid" 2>/dev/null || true
    node_pid=
}

cleanup() {
    stop_node
    [ -n "${redis_pid:-}" ] && kill "$redis_pid" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$work"
}

# A wrk script that PUTs 10,000 rotating keys with 3-byte values.
write_put_script() {
    cat >"$work/put.lua" <<'LUA'
wrk.method = "PUT"
wrk.headers["Content-Type"] = "application/json"
counter = 0
request = function()
    counter = counter + 1
    return wrk.format(nil, "/put", nil, '{"key":"bench:' .. (counter % 10000) .. '","value":"xyz"}')
end
LUA
}

# run_wrk NAME CONNECTIONS URL [SCRIPT]: one wrk run, output kept as $work/NAME.wrk.
run_wrk() {
    local name=$1 connections=$2 url=$3 script=${4:-}
    wrk -t1 -c"$connections" -d"${DURATION}s" --latency ${script:+-s "$script"} "$url" >"$work/$name.wrk"
}

# start_redis ARGS...: a fresh redis-server on REDIS_PORT.
start_redis() {
    redis-server --port "$REDIS_PORT" --save '' --daemonize no "$@" >"$work/redis.log" 2>&1 &
    redis_pid=$!
    for _ in $(seq 100); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && return 0; sleep 0.1; done
    echo "redis-server did not start"; cat "$work/redis.log"; exit 1
}

stop_redis() {
    kill "$redis_pid" 2>/dev/null || true
    wait "$redis_pid" 2>/dev/null || true
    redis_pid=
}

# Python helpers for the reports: wrk(name) -> (ops/s, p50 ms, p99 ms, non-2xx) and redis(name).
REPORT_HELPERS=$(cat <<'PY'
import csv, re, sys, pathlib
work = pathlib.Path(sys.argv[1])

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

def row(name, node, redis_figures):
    rps, p50, p99, errors = node
    rrps, rp50, rp99 = redis_figures
    note = f"  ({errors} non-2xx)" if errors else ""
    print(f"{name:34} {rps:10.0f} {p50:8.3f} {p99:8.3f} | {rrps:11.0f} {rp50:8.3f} {rp99:8.3f} | {rps / rrps:5.2f}x{note}")

def median(values):
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2

def compare(name, node_rounds, redis_rounds):
    """Medians of each figure over alternating rounds; the ratio of the median throughputs."""
    node = tuple(median([r[i] for r in node_rounds]) for i in range(3)) + (sum(r[3] for r in node_rounds),)
    redis_figures = tuple(median([r[i] for r in redis_rounds]) for i in range(3))
    row(name, node, redis_figures)
    spread = lambda values: (max(values) - min(values)) / median(values) * 100
    print(f"{'':34} rounds: node {' '.join(f'{r[0]:.0f}' for r in node_rounds)} (±{spread([r[0] for r in node_rounds]) / 2:.0f}%)"
          f" | redis {' '.join(f'{r[0]:.0f}' for r in redis_rounds)} (±{spread([r[0] for r in redis_rounds]) / 2:.0f}%)")

def header(title):
    print(f"{title:34} {'ops/s':>10} {'p50 ms':>8} {'p99 ms':>8} | {'redis ops/s':>11} {'p50 ms':>8} {'p99 ms':>8} | ratio")
PY
)
