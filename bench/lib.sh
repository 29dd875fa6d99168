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
    wait_for "http://127.0.0.1:$NODE_PORT/health" 600 && return 0
    echo "cache-node did not start:"; cat "$work/node.log"; exit 1
}

# wait_for URL POLLS: polls URL every 50 ms until it answers 2xx; false after POLLS polls.
wait_for() {
    for _ in $(seq "$2"); do curl -sf "$1" >/dev/null && return 0; sleep 0.05; done
    return 1
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

# A 3-node cache-node cluster for the cluster benchmarks: nodes c0-c2 on HTTP_BASE+i and
# PEER_BASE+i (and RESP_BASE+i when RESP_BASE is set), one event loop each, memory only; extra
# KEY=VALUE settings as arguments. Waits until every node sees all three alive.
node_pids=()
start_cluster() {
    node_pids=()
    local count=${CLUSTER_NODES:-3}
    for i in $(seq 0 $((count - 1))); do
        env LOG_LEVEL=warning NODE_ID="c$i" HOST=127.0.0.1 PORT=$((HTTP_BASE + i)) PEER_PORT=$((PEER_BASE + i)) \
            ${RESP_BASE:+RESP_PORT=$((RESP_BASE + i))} EVENT_LOOPS=1 SEEDS="127.0.0.1:$PEER_BASE" \
            GOSSIP_INTERVAL=500ms "$@" "$NODE" >"$work/node$i.log" 2>&1 &
        node_pids+=($!)
    done
    for _ in $(seq 300); do
        local ready=0
        for i in $(seq 0 $((count - 1))); do
            curl -sf "http://127.0.0.1:$((HTTP_BASE + i))/cluster" 2>/dev/null \
                | python3 -c "import json,sys; d=json.load(sys.stdin); sys.exit(0 if sum(m['status']=='alive' for m in d['members'])==$count and d['ring_members']==$count else 1)" 2>/dev/null \
                && ready=$((ready + 1))
        done
        [ "$ready" = "$count" ] && return 0
        sleep 0.1
    done
    echo "the cluster did not form:"; cat "$work"/node*.log; exit 1
}

stop_cluster() {
    for pid in "${node_pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${node_pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    node_pids=()
}

# start_redis_cluster REPLICAS: a Redis Cluster of 3 masters with REPLICAS replicas each on
# REDIS_BASE, REDIS_BASE+1, ... (no persistence); waits until its state is ok and every replica
# has joined.
redis_pids=()
start_redis_cluster() {
    local replicas=${1:-0} count=$((3 * (1 + ${1:-0}))) addresses=() i
    redis_pids=()
    for ((i = 0; i < count; i++)); do
        local port=$((REDIS_BASE + i))
        mkdir -p "$work/redis$i"
        (cd "$work/redis$i" && exec redis-server --port "$port" --cluster-enabled yes --cluster-config-file nodes.conf \
            --save '' --appendonly no --daemonize no >"$work/redis$i.log" 2>&1) &
        redis_pids+=($!)
        addresses+=("127.0.0.1:$port")
    done
    for ((i = 0; i < count; i++)); do
        for _ in $(seq 100); do redis-cli -p $((REDIS_BASE + i)) ping >/dev/null 2>&1 && break; sleep 0.1; done
    done
    redis-cli --cluster create "${addresses[@]}" --cluster-replicas "$replicas" --cluster-yes >"$work/create.log" 2>&1
    for _ in $(seq 100); do
        if redis-cli -p "$REDIS_BASE" cluster info | grep -q 'cluster_state:ok' \
            && [ "$(redis-cli -p "$REDIS_BASE" cluster nodes | grep -c slave)" = $((3 * replicas)) ]; then
            return 0
        fi
        sleep 0.1
    done
    echo "the Redis cluster did not form:"; cat "$work/create.log"; exit 1
}

stop_redis_cluster() {
    for pid in "${redis_pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${redis_pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    redis_pids=()
    rm -rf "$work"/redis?
}

# The clusters' processes and the work directory, on exit.
cleanup_cluster() {
    for pid in "${node_pids[@]}" "${redis_pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
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
    # `--cluster` prints the cluster's masters before the CSV: start at the header line.
    lines = (work / f"{name}.csv").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith('"test"'))
    rows = {r["test"]: r for r in csv.DictReader(lines[start:])}
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

def compare(name, node_rounds, redis_rounds, anchor="redis"):
    """Medians of each figure over alternating rounds; the ratio of the median throughputs."""
    node = tuple(median([r[i] for r in node_rounds]) for i in range(3)) + (sum(r[3] for r in node_rounds),)
    redis_figures = tuple(median([r[i] for r in redis_rounds]) for i in range(3))
    row(name, node, redis_figures)
    spread = lambda values: (max(values) - min(values)) / median(values) * 100
    print(f"{'':34} rounds: node {' '.join(f'{r[0]:.0f}' for r in node_rounds)} (±{spread([r[0] for r in node_rounds]) / 2:.0f}%)"
          f" | {anchor} {' '.join(f'{r[0]:.0f}' for r in redis_rounds)} (±{spread([r[0] for r in redis_rounds]) / 2:.0f}%)")

def header(title):
    print(f"{title:34} {'ops/s':>10} {'p50 ms':>8} {'p99 ms':>8} | {'redis ops/s':>11} {'p50 ms':>8} {'p99 ms':>8} | ratio")
PY
)
