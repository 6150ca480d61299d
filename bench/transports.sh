#!/usr/bin/env bash
# bench/transports.sh -- server CPU per delivery with RESP, SSE and WebSocket subscribers.
#
# Usage: bench/transports.sh [--scenarios A,C] [--runs 6] [--duration 5] [--warmup 1]
#                            [--build DIR] [--out FILE] [--max-load L] [--max-wait S]
#
# One ringcastd build, three subscriber transports: for every run and scenario, each of
# `ringcast-bench --proto resp|sse|ws` gets a fresh ringcastd (io uring, output limits lifted, as
# bench/run.sh starts it, plus --http-port on a free port) pinned to CPU 0, and ringcast-bench
# pinned to CPU 1 with --server-pid (and --perf when perf can count system calls). The
# publishers speak RESP to the RESP port in all three modes; only the subscribers' transport
# changes, so the figures compare what fan-out costs per delivery in each wire format. The
# order of the three rotates from run to run (resp sse ws, sse ws resp, ws resp sse, ...), so
# drift in the machine's load falls on all three; use a multiple of 3 runs.
#
# Before starting, the script waits (at most --max-wait seconds, default 600) for the 1-minute
# load average to drop below --max-load (default 2.0) and then starts anyway, saying so. Every
# bench run is bounded by `timeout 120`.
#
# Prints one line per run and, per scenario and transport, the medians of the valid runs. A run
# with anything lost, skipped, duplicated, reordered, misrouted or undelivered, or with an error,
# is marked INVALID and left out of the medians. Every RESULT line is kept unchanged in
# bench/results/transports/<date>-<HHMM>-<host>-transports.jsonl (--out), next to "cmd" lines
# with the exact server and bench commands and the load average before each run (a directory of
# its own: bench/report.py reads the newest bench/results/*.jsonl as a bench/run.sh file).
#
# SPDX-License-Identifier: BSD-3-Clause
set -euo pipefail

ARGV="bench/transports.sh${*:+ $*}"
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
BUILD=${RINGCAST_BUILD:-$ROOT/build-release}
SCENARIOS=A,C
RUNS=6
DURATION=5
WARMUP=1
OUT=""
MAX_LOAD=2.0
MAX_WAIT=600
PROTOS=(resp sse ws)

while [ $# -gt 0 ]; do
    case "$1" in
    --scenarios) SCENARIOS=$2; shift ;;
    --runs) RUNS=$2; shift ;;
    --duration) DURATION=$2; shift ;;
    --warmup) WARMUP=$2; shift ;;
    --build) BUILD=$2; shift ;;
    --out) OUT=$2; shift ;;
    --max-load) MAX_LOAD=$2; shift ;;
    --max-wait) MAX_WAIT=$2; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "transports.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
    esac
    shift
done

mkdir -p "$ROOT/bench/results/transports"
HOST=$(hostname -s 2>/dev/null || hostname)
[ -n "$OUT" ] || OUT="$ROOT/bench/results/transports/$(date +%Y-%m-%d-%H%M)-$HOST-transports.jsonl"
TMP=$(mktemp -d /tmp/ringcast-transports.XXXXXX)
SERVER_PID=""
cleanup() {
    stop_server
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- build (Release), limits, perf -----------------------------------------------------------
if [ ! -f "$BUILD/CMakeCache.txt" ]; then
    cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
fi
cmake --build "$BUILD" -j2 --target ringcastd ringcast-bench >"$TMP/build.log" 2>&1 ||
    { cat "$TMP/build.log" >&2; exit 1; }
RCD=$BUILD/ringcastd
BENCH=$BUILD/ringcast-bench
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
NOFILE=$(ulimit -n)
MAXCLIENTS=$((NOFILE > 19100 ? 19000 : NOFILE - 100))
PERF=()
if command -v perf >/dev/null && perf stat -e raw_syscalls:sys_enter -o /dev/null true 2>/dev/null
then
    PERF=(--perf)
fi

loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
json_str() { /usr/bin/python3 -c 'import json,sys; print(json.dumps(sys.argv[1]))' "$1"; }
cmd_json() {
    /usr/bin/python3 -c 'import json,shlex,sys; print(json.dumps(shlex.join(sys.argv[1:])))' "$@"
}

flags_of() {
    local common="--size 128 --pipeline 64 --duration $DURATION --warmup $WARMUP"
    case "$1" in
    A) echo "--subs 100 --channels 1 --pubs 1 $common" ;;
    B) echo "--subs 1000 --channels 1 --pubs 1 $common" ;;
    C) echo "--subs 1000 --channels 100 --pubs 4 $common" ;;
    D) echo "--subs 100 --channels 1 --pubs 1 --rate 20000 $common" ;;
    *) echo "transports.sh: unknown scenario $1" >&2; exit 2 ;;
    esac
}

# run SCENARIO PROTO RUN -> appends to $OUT, prints "ns rate syscalls subcpu valid"
run() {
    local scen=$1 proto=$2 i=$3 port hport rc=0
    port=$(free_port)
    hport=$(free_port)
    local server=(taskset -c 0 "$RCD" --port "$port" --http-port "$hport" --bind 127.0.0.1
        --io uring --client-output-buffer-limit 'normal 0 0 0 pubsub 0 0 0'
        --maxclients "$MAXCLIENTS" --loglevel warning)
    "${server[@]}" >"$TMP/server.log" 2>&1 &
    SERVER_PID=$!
    wait_ports "$port" "$hport" || true
    local label="$scen-$proto-run$i"
    # shellcheck disable=SC2207
    local flags=($(flags_of "$scen"))
    local bench=(taskset -c 1 "$BENCH" --proto "$proto" --port "$port" --http-port "$hport"
        "${flags[@]}" --server-pid "$SERVER_PID" "${PERF[@]}" --label "$label" --json-only)
    printf '{"kind":"cmd","label":%s,"server_cmd":%s,"bench_cmd":%s,"loadavg_before":%s}\n' \
        "$(json_str "$label")" "$(cmd_json "${server[@]}")" "$(cmd_json "${bench[@]}")" \
        "$(json_str "$(loadavg)")" >>"$OUT"
    timeout 120 "${bench[@]}" >"$TMP/out" 2>&1 || rc=$?
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
    grep '^RESULT ' "$TMP/out" | sed 's/^RESULT //' >>"$OUT" || true
    /usr/bin/python3 - "$TMP/out" "$rc" <<'PY'
import json, sys
line = next((l for l in open(sys.argv[1]) if l.startswith("RESULT ")), None)
if not line:
    err = open(sys.argv[1]).read().strip().replace("\n", " ")[:80].replace(" ", "_")
    print("nan nan nan nan INVALID(no-result,exit=%s,%s)" % (sys.argv[2], err)); sys.exit()
r = json.loads(line[7:])
bad = {k: r.get(k) for k in ("lost", "gaps", "dups", "reorders", "misrouted",
                             "reply_mismatch") if r.get(k)}
if r.get("deliveries") != r.get("expected"):
    bad["undelivered"] = r.get("expected", 0) - r.get("deliveries", 0)
if r.get("error"):
    bad["error"] = r["error"]
ns = r["cpu_s_per_million"] * 1000 if r.get("cpu_s_per_million") is not None else float("nan")
sc = r["syscalls_per_delivery"] if r.get("syscalls_per_delivery") is not None else float("nan")
sub = 100 * r["bench_sub_cpu_s"] / r["duration"] if r.get("duration") else float("nan")
verdict = ("INVALID(%s)" % json.dumps(bad, separators=(",", ":"))).replace(" ", "_")
print("%.1f %.0f %.5f %.0f %s" % (ns, r.get("deliveries_per_sec") or 0, sc, sub,
                                  verdict if bad else "valid"))
PY
}

# ---- wait for a quieter moment, bounded -------------------------------------------------------
waited=0
while awk -v l="$(cut -d' ' -f1 /proc/loadavg)" -v m="$MAX_LOAD" 'BEGIN { exit !(l >= m) }' &&
    [ "$waited" -lt "$MAX_WAIT" ]; do
    echo "# load $(loadavg) >= $MAX_LOAD: waiting (${waited}s of at most ${MAX_WAIT}s)" >&2
    sleep 15
    waited=$((waited + 15))
done

START_LOAD=$(loadavg)
/usr/bin/python3 - "$ARGV" "$START_LOAD" "$waited" >>"$OUT" <<'PY'
import json, os, platform, sys, time
print(json.dumps({"kind": "meta", "what": "start", "argv": sys.argv[1],
                  "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "cpus": os.cpu_count(),
                  "kernel": platform.release(), "loadavg": sys.argv[2].split(),
                  "waited_s": int(sys.argv[3])}))
PY
echo "# $ARGV"
echo "# $(date -u +%FT%TZ), $(nproc) CPUs, load before: $START_LOAD (waited ${waited}s);" \
    "ringcastd on CPU 0, ringcast-bench on CPU 1; publishers speak RESP in every mode"
echo "# results: $OUT"
IFS=, read -r -a scens <<<"$SCENARIOS"
for ((i = 1; i <= RUNS; i++)); do
    for scen in "${scens[@]}"; do
        for k in 0 1 2; do
            proto=${PROTOS[$(((i - 1 + k) % 3))]}
            # not in a subshell: cleanup must see SERVER_PID if the run is interrupted
            run "$scen" "$proto" "$i" >"$TMP/line"
            read -r ns rate sc sub valid <"$TMP/line"
            printf '%s run %d %-4s: %7s ns CPU/delivery, %8s deliveries/s, %s syscalls/delivery,' \
                "$scen" "$i" "$proto" "$ns" "$rate" "$sc"
            printf ' bench sub-thread %s%%, %s\n' "$sub" "$valid"
            echo "$scen $proto $ns $rate $sc $sub $valid" >>"$TMP/all"
        done
    done
done
END_LOAD=$(loadavg)
echo "{\"kind\":\"meta\",\"what\":\"end\",\"time\":\"$(date +%Y-%m-%dT%H:%M:%S%z)\",\"loadavg\":\"$END_LOAD\"}" >>"$OUT"
echo "# load after: $END_LOAD"
/usr/bin/python3 - "$TMP/all" <<'PY'
import math, statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
print("\n| scenario | subscribers | valid runs | server CPU ns/delivery (median) | vs RESP "
      "| deliveries/s (median) | syscalls/delivery | bench sub-thread CPU |")
print("|---|---|---:|---:|---:|---:|---:|---:|")
for scen in dict.fromkeys(r[0] for r in rows):
    base = None
    for proto in ("resp", "sse", "ws"):
        mine = [r for r in rows if r[0] == scen and r[1] == proto]
        ok = [r for r in mine if r[6] == "valid"]
        med = lambda j: statistics.median(float(r[j]) for r in ok) if ok else float("nan")
        ns = med(2)
        if proto == "resp":
            base = ns
        ratio = ns / base if base and not math.isnan(base) else float("nan")
        print("| %s | %s | %d of %d | %.0f | %.2fx | %s | %.5f | %.0f%% |"
              % (scen, proto, len(ok), len(mine), ns, ratio, format(round(med(3)), ",")
                 if ok else "nan", med(4), med(5)))
bad = [r for r in rows if r[6] != "valid"]
if bad:
    print("\nINVALID runs (left out of the medians):")
    for r in bad:
        print("  %s %s: %s" % (r[0], r[1], r[6]))
PY
