#!/usr/bin/python3
"""maxmem.py -- the memory ceiling under a stalled subscriber (issue 16's acceptance run).

Per-client output limits off (`client-output-buffer-limit pubsub 0 0 0`), one
subscriber that never reads, one healthy subscriber on the same channel and
a publisher pipelining PUBLISH as fast as it can for --seconds (default 20).
The server runs pinned on CPU 0, the load (publisher, both subscribers) on
CPU 1. Prints peak RSS (sampled every 20 ms), used_memory_peak, the ceiling,
what was published and what the healthy subscriber received. The run counts
only if the healthy subscriber got every message, in order: it says INVALID
otherwise. Bounded: --seconds of publishing plus at most 60 s to drain.

    bench/maxmem.py --bin build/ringcastd --io uring --maxmemory 256mb

SPDX-License-Identifier: BSD-3-Clause
"""
import argparse
import os
import re
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "integration"))
import rchelper  # noqa: E402

SLACK_MB = 64 + 16  # malloc keeps up to 64 MiB freed (M_TRIM_THRESHOLD) + fixed overhead


def healthy_main(port, chan):
    """Child process: reads and checks every message; prints 'got <n> bad <n>' at EOF."""
    s = socket.create_connection((rchelper.HOST, port))
    s.sendall(rchelper.encode("SUBSCRIBE", chan))
    pat = re.compile(rb"\$\d+\r\nseq:(\d{10}):")
    buf = b""
    nxt = 0
    bad = 0
    while True:
        d = s.recv(1 << 20)
        if not d:
            break
        buf += d
        last = 0
        for m in pat.finditer(buf):
            if int(m.group(1)) != nxt:
                bad += 1
                nxt = int(m.group(1))
            nxt += 1
            last = m.end()
        buf = buf[last:] if last else buf[-200:] if len(buf) > 1 << 22 else buf
        if nxt and os.path.exists("/proc/self") and buf.endswith(b"STOP\r\n"):
            break
    print("got %d bad %d" % (nxt, bad), flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="build/ringcastd")
    ap.add_argument("--io", default="uring")
    ap.add_argument("--maxmemory", default="256mb")
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--healthy-child", nargs=2, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.healthy_child:
        healthy_main(int(a.healthy_child[0]), a.healthy_child[1])
        return
    os.sched_setaffinity(0, {1})
    os.environ["RINGCASTD"] = os.path.abspath(a.bin)
    flags = ["--client-output-buffer-limit", "pubsub 0 0 0", "--maxmemory", a.maxmemory]
    srv = rchelper.Server(flags=flags, io=a.io,
                          preexec=lambda: os.sched_setaffinity(0, {0}))
    try:
        base = rchelper.baseline(srv)
        chan = "mm"
        stalled = socket.socket()
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stalled.connect((rchelper.HOST, srv.port))
        stalled.sendall(rchelper.encode("SUBSCRIBE", chan))
        child = subprocess.Popen([sys.executable, __file__, "--healthy-child", str(srv.port),
                                  chan], stdout=subprocess.PIPE)
        pub = srv.conn(timeout=30)
        while pub.cmd("PUBSUB", "NUMSUB", chan)[1] < 2:
            time.sleep(0.01)
        peak = [base[1]]
        stop = threading.Event()

        def sample():
            while not stop.is_set():
                try:
                    peak[0] = max(peak[0], srv.rss_kb())
                except Exception:  # noqa: BLE001 -- the server may be gone
                    pass
                time.sleep(0.02)

        th = threading.Thread(target=sample, daemon=True)
        th.start()
        batch = 500
        pad = a.size - 15
        sent = 0
        t_end = time.monotonic() + a.seconds
        while time.monotonic() < t_end:
            pub.send(b"".join(rchelper.encode("PUBLISH", chan, b"seq:%010d:%s" % (sent + i,
                                                                                 b"p" * pad))
                              for i in range(batch)))
            for _ in range(batch):
                pub.read()
            sent += batch
        elapsed = a.seconds
        pub.cmd("PUBLISH", chan, "STOP")
        mem = rchelper.info_sections(pub.cmd("INFO", "memory"))["memory"]
        # Close the healthy subscriber's stream: it stops at the STOP message.
        try:
            out, _ = child.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            child.kill()
            out = b"got -1 bad -1"
        stop.set()
        th.join()
        got, bad = (int(x) for x in re.findall(rb"-?\d+", out)[:2])
        ceiling = int(mem["maxmemory"])
        limit_kb = ceiling // 1024 + SLACK_MB * 1024
        valid = got == sent and bad == 0
        print("io=%s maxmemory=%s: published %d messages of %d bytes in %.0f s (%.0f/s); "
              "healthy subscriber got %d, out of order %d; stalled subscriber disconnects %s, "
              "conflations %s; used_memory_peak %.1f MiB; peak RSS %.1f MiB (idle %.1f MiB); "
              "ceiling %.1f MiB + slack %d MiB = %.1f MiB: %s%s"
              % (a.io, a.maxmemory, sent, a.size, elapsed, sent / elapsed, got, bad,
                 mem["maxmemory_disconnects"], mem["maxmemory_conflations"],
                 int(mem["used_memory_peak"]) / 1048576, peak[0] / 1024, base[1] / 1024,
                 ceiling / 1048576, SLACK_MB, limit_kb / 1024,
                 "within" if peak[0] <= limit_kb else "OVER",
                 "" if valid else " -- INVALID RUN: the healthy subscriber lost messages"))
        stalled.close()
        pub.close()
    finally:
        srv.close()


if __name__ == "__main__":
    main()
