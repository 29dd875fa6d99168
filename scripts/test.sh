#!/usr/bin/env bash
# What `make test` runs: each step's output goes to a file under .build/test-logs, the terminal gets
# one line per step (time and what it proved), and a failing step prints the end of its log.
# VERBOSE=1 streams everything instead.
set -uo pipefail
cd "$(dirname "$0")/.."
logs=.build/test-logs
mkdir -p "$logs"
MAKE=${MAKE:-make}
SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
started=$(date +%s)
summary=()

# step NAME COMMAND...: runs the command, its output in $logs/NAME.log.
step() {
    local name=$1
    shift
    local log="$logs/$name.log" begin end status
    begin=$(date +%s)
    printf '%-12s ' "$name"
    if [ "${VERBOSE:-0}" = 1 ]; then
        "$@" 2>&1 | tee "$log"
        status=${PIPESTATUS[0]}
    else
        "$@" >"$log" 2>&1
        status=$?
    fi
    end=$(date +%s)
    if [ "$status" != 0 ]; then
        echo "FAILED after $((end - begin)) s"
        echo "  the end of $log:"
        tail -n 40 "$log" | sed 's/^/    /'
        # What failed comes last, next to the verdict: a CI page may show only the output's end,
        # and a long log's own end may not name the failing test.
        # Only the lines that report a failure: test names and arguments may contain "error:" too.
        local failures='^\s*✘ Test .* recorded an issue|^error: |: error: |Fatal error|Precondition failed|Assertion failed|Exited with (unexpected )?signal|^FAILED|^E  '
        if grep -qE "$failures" "$log"; then
            echo "  what failed:"
            grep -E "$failures" "$log" | head -n 30 | cut -c1-300 | sed 's/^/    /'
        fi
        echo "make test: FAILED in step $name (all output: $log)"
        exit "$status"
    fi
    local detail
    detail=$(figures "$name" "$log")
    echo "ok  $((end - begin)) s  $detail"
    summary+=("$name: $detail")
}

# What a step's log says it did, in a few words.
figures() {
    case $1 in
    build) echo "warnings: $(grep -c 'warning:' "$2" | tr -d ' ') (of our own: $(grep 'warning:' "$2" | grep -cv '/.build/checkouts/\|swift-distributed-tracing' | tr -d ' '))" ;;
    tests) grep -Eo 'Test run with [0-9]+ tests in [0-9]+ suites passed' "$2" | tail -1 | sed 's/Test run with //; s/ passed//' ;;
    python) grep -Eo '[0-9]+ passed' "$2" | tail -1 | sed 's/$/ (pytest), ruff and mypy --strict clean/' ;;
    browser) grep -Eo '[0-9]+ passed' "$2" | tail -1 | sed 's/$/ in chromium (playwright)/' ;;
    kubernetes) grep -Eo '[0-9]+ passed' "$2" | tail -1 | sed 's/$/: manifests valid (kubernetes-validate --strict), preStop hook run/' ;;
    simulator) grep -Eo '^[0-9]+ (membership |cluster )?seeds[^,]*, [0-9]+ failed' "$2" | paste -sd ';' - | sed 's/;/; /g' ;;
    chaos) grep -Eo '^[0-9]+ operations in [0-9.]+s: [0-9]+ ok|; [0-9]+ faults' "$2" | paste -sd ' ' - | awk '{ for (i = 1; i <= NF; i++) { if ($i == "operations") ops += $(i - 1); if ($i == "faults") faults += $(i - 1) } } END { printf "%d operations, %d faults, every checker held", ops, faults }' ;;
    fuzz) grep -Eo 'Done [0-9]+ runs' "$2" | awk '{ runs += $2; n++ } END { printf "%d targets, %d executions", n, runs }' ;;
    esac
}

# The Redis-protocol tests drive real nodes with PyPI's redis client (and Debian's redis-cli).
step build bash -c "$MAKE --no-print-directory deps EXTRA_PACKAGES='$TEST_PACKAGES' && { python3 -c 'import redis' 2>/dev/null || python3 -m pip install -q redis; } && swift build --build-tests"
step tests swift test --skip-build
# The Python client: its own virtual environment, lint, types and tests against the debug nodes.
python_client() {
    local venv=.build/python-venv
    # Debian's python3 makes virtual environments only with python3-venv installed.
    [ -x "$venv/bin/python" ] || python3 -m venv "$venv" || {
        rm -rf "$venv"
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3-venv && python3 -m venv "$venv"
    } || return 1
    "$venv/bin/pip" install -q -e 'clients/python[test]' || return 1
    (cd clients/python && "../../$venv/bin/ruff" check . && "../../$venv/bin/ruff" format --check . \
        && "../../$venv/bin/mypy" && CACHE_NODE=../../.build/debug/cache-node "../../$venv/bin/pytest" -q)
}
step python python_client
# The cluster page in a real browser: Debian's chromium (installed with the test packages) driven by
# PyPI's playwright, which is never let download a browser of its own.
browser_tests() {
    local venv=.build/python-venv
    "$venv/bin/pip" install -q playwright || return 1
    (cd Tests/Browser && "../../$venv/bin/ruff" check . && "../../$venv/bin/ruff" format --check . \
        && "../../$venv/bin/mypy" . && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 \
        CACHE_NODE=../../.build/debug/cache-node "../../$venv/bin/pytest" -q)
}
step browser browser_tests
# deploy/kubernetes: PyPI's kubernetes-validate against the API's schemas, the manifests against the
# node's settings, and the preStop hook run for real (a stand-in API server, real nodes).
kubernetes_manifests() {
    local venv=.build/python-venv
    "$venv/bin/pip" install -q kubernetes-validate types-PyYAML || return 1
    (cd Tests/Kubernetes && "../../$venv/bin/ruff" check . && "../../$venv/bin/ruff" format --check . \
        && "../../$venv/bin/mypy" . && CACHE_NODE=../../.build/debug/cache-node "../../$venv/bin/pytest" -q)
}
step kubernetes kubernetes_manifests
step chaos "$MAKE" --no-print-directory chaos-short
step simulator "$MAKE" --no-print-directory sim-sweep
step fuzz "$MAKE" --no-print-directory fuzz-smoke

echo "make test: passed in $(($(date +%s) - started)) s"
for line in "${summary[@]}"; do echo "  $line"; done
