#!/usr/bin/python3
"""bench/server_probe.py -- what a server did around one bench run: CPU per thread, INFO fanout.

  server_probe.py snap PID [RESP_PORT [WAIT_S]] > snap.json
      CPU ticks of every thread of PID (/proc/PID/task/*/stat, utime+stime) and its name;
      with RESP_PORT (ringcastd), also INFO fanout's integer fields and CONFIG GET workers. With
      WAIT_S, first polls INFO fanout (every 10 ms, at most WAIT_S seconds) until
      messages_published is above 0: the snapshot then marks the end of the bench's setup
      (connects, subscribes) and the start of its warm-up.
  server_probe.py diff BEFORE.json AFTER.json [START.json] [--bench-cpu S] > server.json
      the difference: each thread's CPU seconds from BEFORE (threads that started in between
      count from 0; threads that ended are missing), the busy threads (at least 5 % of one CPU
      over the interval), and with INFO, syscalls (all, and by kind) and deliveries from START
      (when it has INFO and saw publishing; else from BEFORE) and their ratio, leaving out
      close and accept (the bench's connections ending and starting). With --bench-cpu (the
      bench's CPU seconds over the same interval), also the CPU everything else on the
      machine used meanwhile: /proc/stat's busy time less the server's and the bench's.

Used by bench/workers.sh. Standard library only. SPDX-License-Identifier: BSD-3-Clause
"""
import json
import os
import socket
import sys
import time

TCK = os.sysconf("SC_CLK_TCK")
BUSY = 0.05  # of one CPU over the interval


def threads(pid):
    out = {}
    base = f"/proc/{pid}/task"
    for tid in os.listdir(base):
        try:
            with open(f"{base}/{tid}/stat") as f:
                st = f.read()
        except OSError:
            continue
        comm = st[st.index("(") + 1:st.rindex(")")]
        fields = st[st.rindex(")") + 2:].split()
        out[tid] = {"comm": comm, "ticks": int(fields[11]) + int(fields[12])}
    return out


def machine_busy():
    """CPU ticks all CPUs spent busy (user, nice, system, irq, softirq, steal): /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return v[0] + v[1] + v[2] + v[5] + v[6] + (v[7] if len(v) > 7 else 0)


def resp(port, *words, timeout=2.0):
    """One RESP command; returns the bulk string or array of bulk strings, decoded."""
    with socket.create_connection(("127.0.0.1", port), timeout) as s:
        s.settimeout(timeout)
        cmd = f"*{len(words)}\r\n" + "".join(f"${len(w)}\r\n{w}\r\n" for w in words)
        s.sendall(cmd.encode())
        buf = b""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
            parsed = parse(buf)
            if parsed is not None:
                return parsed
    return None


def parse(buf):
    """A complete RESP bulk string or flat array of them in buf, else None."""
    def bulk(i):
        j = buf.find(b"\r\n", i)
        if j < 0:
            return None, i
        n = int(buf[i + 1:j])
        if n < 0:
            return "", j + 2
        if len(buf) < j + 2 + n + 2:
            return None, i
        return buf[j + 2:j + 2 + n].decode(errors="replace"), j + 2 + n + 2
    if buf.startswith(b"$"):
        v, _ = bulk(0)
        return v
    if buf.startswith(b"*"):
        j = buf.find(b"\r\n")
        if j < 0:
            return None
        n, i, out = int(buf[1:j]), j + 2, []
        for _ in range(n):
            if i >= len(buf):
                return None
            v, i = bulk(i)
            if v is None:
                return None
            out.append(v)
        return out
    if buf.startswith((b"-", b"+")) and b"\r\n" in buf:
        return buf.split(b"\r\n", 1)[0].decode()
    return None


def wait_publishing(port, wait_s):
    end = time.monotonic() + wait_s
    while time.monotonic() < end:
        try:
            text = resp(port, "INFO", "fanout") or ""
            kv = dict(l.split(":", 1) for l in text.splitlines() if ":" in l)
            if int(kv.get("messages_published", 0)) > 0:
                return True
        except (OSError, ValueError):
            pass
        time.sleep(0.01)
    return False


def snap(pid, port=None, wait_s=None):
    saw = wait_publishing(port, wait_s) if port and wait_s else None
    rec = {"t": time.monotonic(), "threads": threads(pid), "busy_ticks": machine_busy(),
           "info": None, "config_workers": None}
    if port:
        try:
            text = resp(port, "INFO", "fanout") or ""
            kv = dict(l.split(":", 1) for l in text.splitlines() if ":" in l)
            # Every integer counter of the section (so that counters a later build adds, such
            # as posts between workers, are kept too); gauges come out as differences.
            rec["info"] = {k: int(v) for k, v in kv.items() if v.strip().lstrip("-").isdigit()}
            cw = resp(port, "CONFIG", "GET", "workers")
            if isinstance(cw, list) and len(cw) == 2:
                rec["config_workers"] = int(cw[1])
        except (OSError, ValueError) as e:
            rec["info_error"] = str(e)
    if saw is not None:
        rec["saw_publishing"] = saw
    return rec


def diff(a, b, start=None, bench_cpu_s=None):
    wall = b["t"] - a["t"]
    ths = []
    for tid, t in b["threads"].items():
        before = a["threads"].get(tid, {}).get("ticks", 0)
        ths.append({"tid": int(tid), "comm": t["comm"], "cpu_s": (t["ticks"] - before) / TCK})
    ths.sort(key=lambda t: -t["cpu_s"])
    out = {"wall_s": round(wall, 3), "threads": ths,
           "busy_threads": sum(1 for t in ths if wall > 0 and t["cpu_s"] >= BUSY * wall),
           "cpu_s": round(sum(t["cpu_s"] for t in ths), 2),
           "config_workers": b.get("config_workers"), "info": None}
    if bench_cpu_s is not None and a.get("busy_ticks") is not None:
        # Everything else the machine ran meanwhile (other users' work; these probes):
        # all busy CPU time less the server's and the bench's.
        busy = (b["busy_ticks"] - a["busy_ticks"]) / TCK
        out["machine_busy_s"] = round(busy, 2)
        out["bench_run_cpu_s"] = bench_cpu_s
        out["others_cpu_s"] = round(max(0.0, busy - out["cpu_s"] - bench_cpu_s), 2)
    first, out["info_from"] = a, "before the bench"
    if start and start.get("info") and start.get("saw_publishing"):
        first, out["info_from"] = start, "the start of publishing"
    if first.get("info") and b.get("info"):
        d = {k: b["info"][k] - first["info"].get(k, 0) for k in b["info"]}
        # The bench closes its 1,000 connections when it ends, before the last snapshot: one
        # close() each on the server. Connection teardown is no part of fan-out, so the ratio
        # leaves closes (and accepts, were any left after START) out; the raw counts stay.
        d["syscalls_less_conn"] = d.get("syscalls", 0) - d.get("sys_close", 0) - \
            d.get("sys_accept", 0)
        if d.get("deliveries"):
            d["syscalls_per_delivery"] = d["syscalls_less_conn"] / d["deliveries"]
        out["info"] = d
    return out


def main(argv):
    if len(argv) >= 2 and argv[0] == "snap":
        print(json.dumps(snap(int(argv[1]), int(argv[2]) if len(argv) > 2 else None,
                              float(argv[3]) if len(argv) > 3 else None)))
    elif len(argv) >= 3 and argv[0] == "diff":
        bench_cpu_s = None
        if "--bench-cpu" in argv:
            i = argv.index("--bench-cpu")
            try:
                bench_cpu_s = float(argv[i + 1])
            except (IndexError, ValueError):
                bench_cpu_s = None
            argv = argv[:i] + argv[i + 2:]
        with open(argv[1]) as fa, open(argv[2]) as fb:
            a, b = json.load(fa), json.load(fb)
        start = None
        if len(argv) > 3:
            try:
                with open(argv[3]) as fs:
                    start = json.load(fs)
            except (OSError, ValueError):
                start = None
        print(json.dumps(diff(a, b, start, bench_cpu_s), separators=(",", ":")))
    else:
        sys.stderr.write(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
