#!/usr/bin/env bash
# bench/instr.sh -- user-space instructions per delivery of two ringcastd builds, under callgrind.
#
# Usage: bench/instr.sh OLD_BUILD_DIR NEW_BUILD_DIR [--scenarios A,C] [--rate R] [--duration S]
#
# Server CPU per delivery on a shared 2-core machine moves by 10-20 % from run to run, which
# hides a change of a few per cent. The instructions a server executes in user space for a
# given workload do not: callgrind counts them exactly, whatever else the machine is doing.
# Each build's ringcastd runs under `valgrind --tool=callgrind` while NEW's ringcast-bench
# (the same load generator for both) drives a fixed-rate workload of the scenario's shape;
# the result is callgrind's instruction total divided by the deliveries the bench counted,
# startup and shutdown included (a few million instructions, under 1 % here). The kernel's
# share of the server's CPU (84-94 %, research/profile.md) is not in it: only user-space code
# changed between the builds compared, and this isolates exactly that. A run with anything
# lost, reordered or undelivered is reported INVALID.
#
# SPDX-License-Identifier: BSD-3-Clause
set -euo pipefail

[ $# -ge 2 ] || { sed -n '/^# Usage:/,/^$/p' "$0"; exit 2; }
OLD=$(cd "$1" && pwd)
NEW=$(cd "$2" && pwd)
shift 2
SCENARIOS=A,C
RATE=1000
DURATION=4
while [ $# -gt 0 ]; do
    case "$1" in
    --scenarios) SCENARIOS=$2; shift ;;
    --rate) RATE=$2; shift ;;
    --duration) DURATION=$2; shift ;;
    *) echo "instr.sh: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
command -v valgrind >/dev/null || { echo "instr.sh: needs valgrind" >&2; exit 2; }
TMP=$(mktemp -d /tmp/ringcast-instr.XXXXXX)
VG_PID=""
cleanup() {
    [ -z "$VG_PID" ] || kill "$VG_PID" 2>/dev/null || true
    rm -rf "$TMP"
}
trap cleanup EXIT

shape() {
    case "$1" in
    A) echo "--subs 100 --channels 1 --pubs 1" ;;
    C) echo "--subs 1000 --channels 100 --pubs 4" ;;
    *) echo "instr.sh: unknown scenario $1" >&2; exit 2 ;;
    esac
}

free_port() {
    /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

run() {
    local build=$1 scen=$2 port http=() out
    port=$(free_port)
    "$build/ringcastd" --help 2>/dev/null | grep -q -- --http-port && http=(--http-port 0)
    out=$TMP/cg.$RANDOM
    valgrind --tool=callgrind --callgrind-out-file="$out" "$build/ringcastd" --port "$port" \
        "${http[@]}" --io uring --client-output-buffer-limit 'normal 0 0 0 pubsub 0 0 0' \
        --maxclients 20000 --loglevel warning >"$TMP/vg.log" 2>&1 &
    VG_PID=$!
    for _ in $(seq 100); do
        /usr/bin/python3 -c 'import socket,sys; socket.create_connection(("127.0.0.1",int(sys.argv[1])),0.2).close()' \
            "$port" 2>/dev/null && break
        sleep 0.2
    done
    # shellcheck disable=SC2046
    timeout 180 "$NEW/ringcast-bench" --port "$port" $(shape "$scen") --size 128 --pipeline 64 \
        --rate "$RATE" --duration "$DURATION" --warmup 1 --json-only >"$TMP/bench.out" 2>&1 || true
    kill -TERM "$VG_PID" 2>/dev/null || true
    wait "$VG_PID" 2>/dev/null || true
    VG_PID=""
    /usr/bin/python3 - "$TMP/bench.out" "$out" <<'PY'
import json, re, sys
line = next((l for l in open(sys.argv[1]) if l.startswith("RESULT ")), None)
ir = None
for l in open(sys.argv[2]):
    m = re.match(r"(?:summary|totals): (\d+)", l)
    if m:
        ir = int(m.group(1))
if not line or ir is None:
    print("nan INVALID(no result)"); sys.exit()
r = json.loads(line[7:])
bad = {k: r.get(k, 0) for k in ("lost", "gaps", "dups", "reorders", "misrouted",
                                 "reply_mismatch") if r.get(k, 0)}
if r.get("deliveries") != r.get("expected"):
    bad["undelivered"] = r.get("expected", 0) - r.get("deliveries", 0)
d = r.get("deliveries") or 0
print("%.1f %s %d %d" % (ir / d if d else float("nan"),
                         "INVALID(%s)" % bad if bad else "valid", ir, d))
PY
}

echo "# bench/instr.sh $OLD $NEW --scenarios $SCENARIOS --rate $RATE --duration $DURATION"
echo "# $(date -u +%FT%TZ), load $(cut -d' ' -f1-3 /proc/loadavg); callgrind instruction counts"
IFS=, read -r -a scens <<<"$SCENARIOS"
for scen in "${scens[@]}"; do
    for which in old new; do
        b=$OLD; [ "$which" = new ] && b=$NEW
        read -r ipd valid ir d < <(run "$b" "$scen")
        echo "$scen $which: $ipd instructions per delivery ($ir instructions, $d deliveries), $valid"
    done
done
