#!/usr/bin/python3
"""bench/upstream_cost.py -- what a message costs an edge on its way in from NATS, and out.

Usage: bench/upstream_cost.py BUILD_DIR [--messages 200000] [--size 100] [--runs 3]

Starts one nats-server and ringcastd (BUILD_DIR/ringcastd) on free 127.0.0.1 ports, with
one RESP subscriber on the edge that only counts bytes. Then, per run, four phases of the
same number of messages of the same size, each measured as CPU time of the edge's threads
(/proc/PID/task/*/schedstat, nanoseconds): the loop thread (its tid is the pid) apart from
libnats's threads.

  in-nats   messages published into NATS by a raw NATS client (this script), which
            the edge receives through libnats's callback, the inbox and the eventfd
  in-resp   the same messages as RESP PUBLISH on an edge *without* upstream: the
            baseline path into the engine, for comparison
  out-on    RESP PUBLISH on the edge with upstream (delivered locally + sent upstream);
            the difference to in-resp is what sending upstream adds

Prints microseconds of CPU per message for each, and the inbox's wake-ups per message
(INFO upstream: upstream_in_wakeups / upstream_in_msgs). The machine is shared: the
numbers are CPU time, not wall time, and the medians of --runs runs are reported.

SPDX-License-Identifier: BSD-3-Clause
"""

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                                "tests", "integration"))
import rchelper as rc  # noqa: E402

def thread_cpu(pid):
    """(loop thread seconds, other threads seconds) of pid, from schedstat (ns)."""
    loop = other = 0.0
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/schedstat" % (pid, tid)) as f:
                t = int(f.read().split()[0]) / 1e9
        except (OSError, ValueError, IndexError):
            continue
        if int(tid) == pid:
            loop += t
        else:
            other += t
    return loop, other


class Counter:
    """A RESP subscriber that counts received bytes."""

    def __init__(self, port, channel):
        self.s = socket.create_connection((rc.HOST, port))
        self.s.sendall(rc.encode("SUBSCRIBE", channel))
        self.n = 0
        self.wait_bytes(1)
        self.n = 0

    def wait_bytes(self, total, timeout=120):
        deadline = time.monotonic() + timeout
        self.s.settimeout(1)
        while self.n < total and time.monotonic() < deadline:
            try:
                d = self.s.recv(1 << 20)
            except socket.timeout:
                continue
            if not d:
                raise SystemExit("subscriber disconnected")
            self.n += len(d)
        if self.n < total:
            raise SystemExit("timed out: %d of %d bytes" % (self.n, total))


def resp_frame_len(channel, payload):
    return len(b"*3\r\n$7\r\nmessage\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (
        len(channel), channel, len(payload), payload))


def nats_publish(port, subject, payload, n):
    s = socket.create_connection((rc.HOST, port))
    s.recv(4096)  # INFO
    s.sendall(b'CONNECT {"verbose":false,"pedantic":false}\r\n')
    one = b"PUB %s %d\r\n%s\r\n" % (subject, len(payload), payload)
    batch = one * 1000
    for _ in range(n // 1000):
        s.sendall(batch)
    s.sendall(one * (n % 1000))
    s.sendall(b"PING\r\n")
    s.settimeout(30)
    buf = b""
    while b"PONG" not in buf:
        buf += s.recv(4096)
    s.close()


def resp_publish(port, channel, payload, n):
    s = socket.create_connection((rc.HOST, port))
    one = rc.encode("PUBLISH", channel, payload)
    reply_len = 0
    for k in range(0, n, 1000):
        m = min(1000, n - k)
        s.sendall(one * m)
    s.settimeout(30)
    # Replies are ":1\r\n" each: wait for all of them.
    want = n * 4
    while reply_len < want:
        d = s.recv(1 << 20)
        if not d:
            break
        reply_len += len(d)
    s.close()


def measure(pid, fn, counter, total_bytes):
    l0, o0 = thread_cpu(pid)
    counter.n = 0
    fn()
    counter.wait_bytes(total_bytes)
    l1, o1 = thread_cpu(pid)
    return l1 - l0, o1 - o0


def info_upstream(port):
    with rc.Conn(port) as c:
        return rc.info_sections(c.cmd("INFO", "upstream"))["upstream"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    ap.add_argument("--messages", type=int, default=200000)
    ap.add_argument("--size", type=int, default=100)
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args()
    os.environ["RINGCASTD"] = os.path.join(os.path.abspath(a.build), "ringcastd")
    nats = shutil.which("nats-server") or "/usr/sbin/nats-server"
    nport = rc.free_port()
    ns = subprocess.Popen([nats, "-a", "127.0.0.1", "-p", str(nport)],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    chan = b"cost.q"
    payload = b"x" * a.size
    total = a.messages * resp_frame_len(chan, payload)
    res = {"in-nats": [], "in-nats-libnats": [], "in-resp": [], "out-on": [],
           "out-on-libnats": []}
    try:
        time.sleep(0.5)
        flags = ["--io", "uring", "--client-output-buffer-limit", "pubsub 0 0 0"]
        with rc.Server(flags=flags + ["--upstream", "nats://127.0.0.1:%d" % nport]) as edge, \
                rc.Server(flags=flags) as plain:
            if not rc.wait_until(lambda: info_upstream(edge.port)["upstream_state"] ==
                                 "connected", 10):
                raise SystemExit("the edge did not connect to nats-server")
            ce = Counter(edge.port, chan)
            cp = Counter(plain.port, chan)
            time.sleep(0.3)
            for _ in range(a.runs):
                l, o = measure(edge.pid, lambda: nats_publish(nport, chan, payload, a.messages),
                               ce, total)
                res["in-nats"].append(l)
                res["in-nats-libnats"].append(o)
                l, _ = measure(plain.pid, lambda: resp_publish(plain.port, chan, payload,
                                                               a.messages), cp, total)
                res["in-resp"].append(l)
                l, o = measure(edge.pid, lambda: resp_publish(edge.port, chan, payload,
                                                              a.messages), ce, total)
                res["out-on"].append(l)
                res["out-on-libnats"].append(o)
            info = info_upstream(edge.port)
    finally:
        ns.kill()
        ns.wait()

    def us(key):
        return statistics.median(res[key]) * 1e6 / a.messages

    print("messages=%d size=%d runs=%d (CPU microseconds per message, median; "
          "all processes share this machine's cores)" % (a.messages, a.size, a.runs))
    print("  from NATS   loop thread      %.3f   libnats threads %.3f   total %.3f" % (
        us("in-nats"), us("in-nats-libnats"), us("in-nats") + us("in-nats-libnats")))
    print("  RESP PUBLISH, no upstream    %.3f   (loop thread: the same engine path)" %
          us("in-resp"))
    print("  RESP PUBLISH, with upstream  %.3f   libnats threads %.3f   (local + sent up)" % (
        us("out-on"), us("out-on-libnats")))
    print("  inbox: %s messages, %s wake-ups (%.4f wake-ups per message), dropped %s" % (
        info["upstream_in_msgs"], info["upstream_in_wakeups"],
        int(info["upstream_in_wakeups"]) / max(1, int(info["upstream_in_msgs"])),
        info["upstream_in_dropped"]))


if __name__ == "__main__":
    main()
