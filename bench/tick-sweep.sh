#!/usr/bin/env bash
# tick-sweep.sh -- the accumulation window's trade-off, measured.
#
# Runs scenarios A, C, D, D1k and E (see BENCHMARKS.md) against redis-server
# and ringcastd --io uring with the default (adaptive accumulation,
# accum-budget-us 500), with no accumulation at all (tick-us 0 and
# accum-budget-us 0: every iteration sends what it has) and with the fixed
# windows --tick-us 100, 500 and 1000, one fresh server per run (CPU 0) and
# ringcast-bench on CPU 1, and prints one table row per run: deliveries/s,
# server CPU ns per delivery, p50/p99 latency, and a run that lost, reordered
# or never delivered messages marked INVALID. Raw RESULT lines go to
# bench/results/<date>-<HHMM>-tick.jsonl. With --runs N every scenario's rows
# run N times, each round in a rotated order (so drift in the machine's load
# falls on every row), and bench/tick-summary.py then prints the medians and
# issue 13's targets, per round ("in one run beside Redis") and on the medians.
#
# Usage: bench/tick-sweep.sh [--build DIR] [--duration S] [--ticks "100 500 1000"]
#                            [--scenarios "A C D D1k E"] [--runs N]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD="$ROOT/build-release"
DURATION=4
TICKS="100 500 1000"
SCENARIOS="A C D D1k E"
RUNS=1
while [ $# -gt 0 ]; do
    case "$1" in
    --build) BUILD=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    --ticks) TICKS=$2; shift 2 ;;
    --scenarios) SCENARIOS=$2; shift 2 ;;
    --runs) RUNS=$2; shift 2 ;;
    *) echo "usage: $0 [--build DIR] [--duration S] [--ticks LIST] [--scenarios LIST] [--runs N]" >&2
       exit 2 ;;
    esac
done
[ -f "$BUILD/CMakeCache.txt" ] || cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$BUILD" -j2 --target ringcastd ringcast-bench >/dev/null
OUT="$ROOT/bench/results/$(date +%Y-%m-%d-%H%M)-tick.jsonl"
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
PORT=$(free_port)

declare -A SCEN=(
    [A]="--subs 100 --channels 1 --pubs 1 --size 128 --pipeline 64"
    [C]="--subs 1000 --channels 100 --pubs 4 --size 128 --pipeline 64"
    [D]="--subs 100 --channels 1 --pubs 1 --size 128 --rate 20000"
    [D1k]="--subs 100 --channels 1 --pubs 1 --size 128 --rate 1000"
    [E]="--subs 100 --channels 1 --pubs 1 --size 4096 --pipeline 64"
)

run() { # label, server command...
    local label=$1; shift
    taskset -c 0 "$@" >/dev/null 2>&1 &
    local pid=$!
    for _ in $(seq 50); do
        (exec 3<>/dev/tcp/127.0.0.1/"$PORT") 2>/dev/null && break
        sleep 0.1
    done
    # shellcheck disable=SC2086
    line=$(taskset -c 1 "$BUILD/ringcast-bench" --port "$PORT" $BENCH --duration "$DURATION" \
        --warmup 1 --server-pid "$pid" --json-only --label "$label" | grep '^RESULT')
    kill "$pid"; wait "$pid" 2>/dev/null || true
    echo "$line" >>"$OUT"
    echo "${line#RESULT }" | /usr/bin/python3 -c '
import json, sys
d = json.load(sys.stdin)
sc, server = d["label"].split("/", 1)
bad = ["%s %d" % (f, d[f]) for f in ("lost", "gaps", "dups", "reorders", "misrouted")
       if d.get(f)]
if d.get("expected") is not None and d.get("deliveries") != d["expected"]:
    bad.append("undelivered %d" % (d["expected"] - d["deliveries"]))
print("| %s | %s | %.2f M/s | %d | %.0f | %.0f |%s" % (sc, server,
      d["deliveries_per_sec"] / 1e6, round(d["cpu_s_per_million"] * 1000),
      d["lat_p50_us"], d["lat_p99_us"], " INVALID (%s)" % ", ".join(bad) if bad else ""))'
}

echo "results: $OUT (load $(cut -d' ' -f1-3 /proc/loadavg))"
echo "| scenario | server | deliveries/s | server CPU ns/delivery | p50 µs | p99 µs |"
echo "|---|---|---:|---:|---:|---:|"
ROWS=(redis default none)
for t in $TICKS; do ROWS+=("tick$t"); done

row() { # scenario, row name
    local sc=$1
    case "$2" in
    redis)
        run "$sc/redis" redis-server --port "$PORT" --bind 127.0.0.1 --save '' --appendonly no \
            --client-output-buffer-limit 'pubsub 0 0 0' ;;
    default)
        run "$sc/uring adaptive (default)" "$BUILD/ringcastd" --port "$PORT" --io uring \
            --client-output-buffer-limit 'normal 0 0 0 pubsub 0 0 0' ;;
    none)
        run "$sc/uring no accumulation" "$BUILD/ringcastd" --port "$PORT" --io uring --tick-us 0 \
            --accum-budget-us 0 --client-output-buffer-limit 'normal 0 0 0 pubsub 0 0 0' ;;
    tick*)
        run "$sc/uring tick-us ${2#tick}" "$BUILD/ringcastd" --port "$PORT" --http-port 0 --io uring \
            --tick-us "${2#tick}" --client-output-buffer-limit 'normal 0 0 0 pubsub 0 0 0' ;;
    esac
}

for ((r = 0; r < RUNS; r++)); do
    for sc in $SCENARIOS; do
        BENCH=${SCEN[$sc]}
        # round r starts at row r: every row is first, middle and last in turn
        for ((i = 0; i < ${#ROWS[@]}; i++)); do
            row "$sc" "${ROWS[$(((i + r) % ${#ROWS[@]}))]}"
        done
    done
done
if [ "$RUNS" -gt 1 ]; then
    echo
    /usr/bin/python3 "$ROOT/bench/tick-summary.py" "$OUT"
fi
