#!/usr/bin/python3
"""syscall-crosscheck -- compare ringcastd's own syscall count with the kernel's.

Starts ringcastd (--io given), connects subscribers, then over one window
counts the server's system calls twice: with `perf stat -e
raw_syscalls:sys_enter -p PID` (the kernel's tracepoint, every syscall of
every thread) and with the server's own counters (INFO fanout `syscalls`),
read at the start and end of the window. Load inside the window: pipelined
PUBLISH bursts to all subscribers.

The two windows are not perfectly aligned: perf attaches a moment before the
first INFO and stops a moment after the last, so the kernel's count also
holds the idle loop wake-ups of those moments and the INFO requests
themselves. Prints both counts and their ratio; exit status 0 when they agree
within --tolerance (relative), 1 when not, 77 when perf cannot run here.

Usage: scripts/syscall-crosscheck.py [--ringcastd PATH] [--io uring|epoll|naive]
         [--subs 100] [--messages 20000] [--tolerance 0.05]
SPDX-License-Identifier: BSD-3-Clause
"""

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "integration"))
import rchelper  # noqa: E402


def server_syscalls(conn):
    text = conn.cmd("INFO", "fanout")
    info = rchelper.info_sections(bytes(text).decode() if not isinstance(text, str) else text)
    fan = info.get("fanout", info)
    return int(fan["syscalls"]), int(fan["deliveries"])


def drain(subs, want_bytes_each, deadline):
    for s in subs:
        got = 0
        while got < want_bytes_each and time.time() < deadline:
            data = s.sock.recv(1 << 20)
            if not data:
                raise SystemExit("subscriber closed early")
            got += len(data)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ringcastd", default=os.environ.get("RINGCASTD", "build/ringcastd"))
    ap.add_argument("--io", default=os.environ.get("RINGCAST_IO", "uring"))
    ap.add_argument("--subs", type=int, default=100)
    ap.add_argument("--messages", type=int, default=20000)
    ap.add_argument("--tolerance", type=float, default=0.05)
    # With more workers, malloc's per-thread arenas add futex calls (a
    # message allocated on one worker is freed on another) that no counter
    # of ours can see; the check of the backends' own counting runs on one.
    ap.add_argument("--workers", type=int, default=1)
    a = ap.parse_args()

    if not shutil.which("perf"):
        print("perf is not installed; skipping")
        return 77
    os.environ["RINGCASTD"] = a.ringcastd
    srv = rchelper.Server(io=a.io, flags=["--workers", str(a.workers)])
    try:
        ctl = srv.conn()
        subs = []
        for _ in range(a.subs):
            c = srv.conn()
            c.cmd("SUBSCRIBE", "xc")
            subs.append(c)
        pub = srv.conn()
        payload = b"x" * 100
        frame = rchelper.encode("PUBLISH", "xc", payload)
        msg_len = len(b"*3\r\n$7\r\nmessage\r\n$2\r\nxc\r\n$100\r\n" + payload + b"\r\n")

        out = tempfile.NamedTemporaryFile(prefix="perf-", suffix=".txt", delete=False)
        out.close()
        perf = subprocess.Popen(["perf", "stat", "-x,", "-e", "raw_syscalls:sys_enter",
                                 "-p", str(srv.proc.pid), "-o", out.name],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(0.5)  # perf attaches asynchronously
        if perf.poll() is not None:
            print("perf could not attach: %s" % perf.stderr.read().decode().strip())
            return 77
        s0, d0 = server_syscalls(ctl)
        sent = 0
        batch = 500
        deadline = time.time() + 60
        while sent < a.messages:
            n = min(batch, a.messages - sent)
            pub.send(frame * n)
            for _ in range(n):
                pub.read()
            sent += n
            drain(subs, n * msg_len, deadline)
        s1, d1 = server_syscalls(ctl)
        time.sleep(0.05)
        perf.send_signal(signal.SIGINT)
        perf.wait(timeout=10)
        kernel = None
        with open(out.name) as f:
            for line in f:
                parts = line.strip().split(",")
                if len(parts) > 2 and "raw_syscalls:sys_enter" in line:
                    kernel = int(parts[0]) if parts[0].isdigit() else None
        os.unlink(out.name)
        if kernel is None:
            print("perf produced no count (not supported here?)")
            return 77
        own = s1 - s0
        deliveries = d1 - d0
        ratio = kernel / own if own else float("inf")
        print("backend=%s subscribers=%d messages=%d deliveries=%d" %
              (a.io, a.subs, a.messages, deliveries))
        print("server-counted syscalls=%d  perf raw_syscalls:sys_enter=%d  ratio=%.3f" %
              (own, kernel, ratio))
        print("syscalls per delivery: server %.5f, perf %.5f" %
              (own / max(deliveries, 1), kernel / max(deliveries, 1)))
        ok = abs(kernel - own) <= max(a.tolerance * own, 20)
        print("agreement: %s (tolerance %.0f%% or 20 calls)" %
              ("OK" if ok else "MISMATCH", 100 * a.tolerance))
        return 0 if ok else 1
    finally:
        srv.close()


if __name__ == "__main__":
    sys.exit(main())
