#!/usr/bin/python3
"""bench/upstream_fanout.py -- 3 edges x 300 subscribers behind a NATS cluster, versus the same
900 subscribers on the NATS cluster directly.

Usage: bench/upstream_fanout.py BUILD_DIR [--subs 300] [--messages 10000] [--size 100] [--runs 3]

Starts a 3-node nats-server cluster (routes on loopback) and, for the edge case, three ringcastd
(BUILD_DIR/ringcastd, io uring), each connected to its own node. Per run and case:

  edges   --subs RESP subscribers on each edge (SUBSCRIBE bench.q);
  direct  --subs NATS subscribers on each node (SUB bench.q 1).

One raw NATS publisher sends --messages messages of --size bytes to node 1, as fast as it can.
Subscribers are plain sockets read by this script (one selector loop) that count bytes until
every one has its share. Reported per case: deliveries per second (wall clock, from the first
publish to the last byte), and the CPU time of the servers (nats-servers, plus the edges in the
edge case; /proc/PID/task/*/schedstat) per delivery, summed over all of them. The load
generator's own CPU is not counted, but it runs on the same machine: every process here shares
its cores (2 on the machine the numbers in docs/cluster.md come from), so take the ratio of the
two cases, not the absolute values.

SPDX-License-Identifier: BSD-3-Clause
"""

import argparse
import os
import resource
import selectors
import shutil
import socket
import statistics
import subprocess
import sys
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                                "tests", "integration"))
import rchelper as rc  # noqa: E402

SUBJ = b"bench.q"


def cpu(pid):
    """CPU seconds of every thread of pid (schedstat: nanoseconds)."""
    total = 0
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/schedstat" % (pid, tid)) as f:
                total += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            pass
    return total / 1e9


def nats_cluster(n):
    exe = shutil.which("nats-server") or "/usr/sbin/nats-server"
    ports = [rc.free_port() for _ in range(n)]
    mports = [rc.free_port() for _ in range(n)]
    cports = [rc.free_port() for _ in range(n)]
    procs = []
    for i in range(n):
        routes = ",".join("nats://127.0.0.1:%d" % p for j, p in enumerate(cports) if j != i)
        procs.append(subprocess.Popen(
            [exe, "-a", "127.0.0.1", "-p", str(ports[i]), "-m", str(mports[i]),
             "--cluster_name", "bench", "--cluster", "nats://127.0.0.1:%d" % cports[i],
             "--routes", routes], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    for m in mports:
        def routed(m=m):
            try:
                with urllib.request.urlopen("http://127.0.0.1:%d/routez" % m, timeout=1) as r:
                    return b'"num_routes": %d' % (n - 1) in r.read()
            except OSError:
                return False
        if not rc.wait_until(routed, 15):
            raise SystemExit("the NATS cluster did not form")
    return procs, ports


class Readers:
    """Many subscriber sockets, read by one selector loop, counting bytes each."""

    def __init__(self):
        self.sel = selectors.DefaultSelector()
        self.socks = []
        self.got = {}

    def add(self, s):
        s.setblocking(False)
        self.sel.register(s, selectors.EVENT_READ)
        self.socks.append(s)
        self.got[s] = 0

    def pump(self, timeout):
        for key, _ in self.sel.select(timeout):
            try:
                d = key.fileobj.recv(1 << 20)
            except BlockingIOError:
                continue
            if not d:
                raise SystemExit("a subscriber was disconnected")
            self.got[key.fileobj] += len(d)

    def wait_each(self, want, timeout):
        deadline = time.monotonic() + timeout
        while min(self.got.values()) < want:
            if time.monotonic() > deadline:
                raise SystemExit("timed out: slowest subscriber has %d of %d bytes"
                                 % (min(self.got.values()), want))
            self.pump(0.1)

    def quiet(self, secs=0.3):
        end = time.monotonic() + secs
        while time.monotonic() < end:
            self.pump(0.05)
        for s in self.socks:
            self.got[s] = 0

    def close(self):
        for s in self.socks:
            self.sel.unregister(s)
            s.close()


def publisher(port):
    s = socket.create_connection((rc.HOST, port))
    s.recv(4096)
    s.sendall(b'CONNECT {"verbose":false,"pedantic":false}\r\nPING\r\n')
    buf = b""
    while b"PONG" not in buf:
        buf += s.recv(4096)
    return s


def publish(s, payload, n):
    one = b"PUB %s %d\r\n%s\r\n" % (SUBJ, len(payload), payload)
    for k in range(0, n, 500):
        s.sendall(one * min(500, n - k))


def run_case(kind, procs, ports, edges, subs, n, payload):
    rd = Readers()
    if kind == "edges":
        frame = len(b"*3\r\n$7\r\nmessage\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (
            len(SUBJ), SUBJ, len(payload), payload))
        for e in edges:
            for _ in range(subs):
                s = socket.create_connection((rc.HOST, e.port))
                s.sendall(rc.encode("SUBSCRIBE", SUBJ))
                rd.add(s)
        confirm = len(b"*3\r\n$9\r\nsubscribe\r\n$%d\r\n%s\r\n:1\r\n" % (len(SUBJ), SUBJ))
        rd.wait_each(confirm, 30)
        pids = [p.pid for p in procs] + [e.pid for e in edges]
    else:
        frame = len(b"MSG %s 1 %d\r\n%s\r\n" % (SUBJ, len(payload), payload))
        for p in ports:
            for _ in range(subs):
                s = socket.create_connection((rc.HOST, p))
                s.recv(4096)  # INFO
                s.sendall(b'CONNECT {"verbose":false}\r\nSUB %s 1\r\nPING\r\n' % SUBJ)
                rd.add(s)
        rd.wait_each(len(b"PONG\r\n"), 30)
        pids = [p.pid for p in procs]
    rd.quiet()
    pub = publisher(ports[0])
    # Warm up until every subscriber hears the publisher (interest has spread).
    for _ in range(200):
        publish(pub, payload, 1)
        rd.pump(0.02)
        if min(rd.got.values()) >= frame:
            break
    rd.quiet(0.5)
    c0 = sum(cpu(p) for p in pids)
    t0 = time.monotonic()
    publish(pub, payload, n)
    rd.wait_each(n * frame, 120)
    wall = time.monotonic() - t0
    c1 = sum(cpu(p) for p in pids)
    pub.close()
    rd.close()
    deliveries = n * len(rd.socks)
    return deliveries / wall, (c1 - c0) * 1e6 / deliveries


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    ap.add_argument("--subs", type=int, default=300)
    ap.add_argument("--messages", type=int, default=10000)
    ap.add_argument("--size", type=int, default=100)
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args()
    os.environ["RINGCASTD"] = os.path.join(os.path.abspath(a.build), "ringcastd")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    payload = b"x" * a.size
    procs, ports = nats_cluster(3)
    edges = []
    res = {"edges": [], "direct": []}
    try:
        flags = ["--io", "uring", "--client-output-buffer-limit", "pubsub 0 0 0"]
        edges = [rc.Server(flags=flags + ["--upstream", "nats://127.0.0.1:%d" % p])
                 for p in ports]
        for _ in range(a.runs):
            for kind in ("edges", "direct"):
                res[kind].append(run_case(kind, procs, ports, edges, a.subs, a.messages,
                                          payload))
    finally:
        for e in edges:
            e.close()
        for p in procs:
            p.kill()
            p.wait()
    print("3 NATS nodes, %d subscribers (%d per node or edge), %d messages of %d bytes, "
          "%d runs, medians; every process shares this machine's %d cores"
          % (3 * a.subs, a.subs, a.messages, a.size, a.runs, os.cpu_count()))
    for kind, what in (("edges", "3 ringcastd edges behind the cluster"),
                       ("direct", "subscribers on the NATS cluster directly")):
        rate = statistics.median(r[0] for r in res[kind])
        us = statistics.median(r[1] for r in res[kind])
        print("  %-42s %10.0f deliveries/s   %.3f us server CPU per delivery" % (what, rate, us))


if __name__ == "__main__":
    main()
