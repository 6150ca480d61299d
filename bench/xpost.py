#!/usr/bin/env python3
"""xpost -- what a message costs when it crosses workers (ringcastd --workers 2).

Starts `ringcastd --workers 2 --io uring` (or --io) and places one publisher and one subscriber
(worker 0 deals connections in turn, CLIENT LIST says where each landed) on
a channel whose owner is known (INFO workers: owned_publishes), in three
layouts:

  local     publisher and subscriber on the channel's owner: no post
  deliver   subscriber on the other worker: one DELIVER post per message
  forward   publisher on the other worker, subscriber on the owner: a PUB
            post to the owner and a REPLY post back per message

For each it publishes --messages pipelined messages (batches of 500), waits
until the subscriber has every one (and checks order), and reads the
server's CPU time (all threads) around the
run (schedstat, all threads). (layout - local) / messages is the CPU cost of the posts of one message,
wake-ups included. Each layout runs --runs times, alternating; medians are
printed. Loopback only; bounded in count and time.

Usage: bench/xpost.py [--ringcastd build-release/ringcastd] [--messages 200000] [--runs 3]

SPDX-License-Identifier: BSD-3-Clause
"""
import argparse
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
import rchelper  # noqa: E402

def cpu_seconds(pid):
    """CPU time of all the server's threads, in ns resolution (schedstat)."""
    total = 0
    for tid in os.listdir("/proc/%d/task" % pid):
        with open("/proc/%d/task/%s/schedstat" % (pid, tid)) as f:
            total += int(f.read().split()[0])
    return total / 1e9


def worker_of(ctl, conn):
    me = conn.cmd("CLIENT", "ID")
    for line in ctl.cmd("CLIENT", "LIST").decode().splitlines():
        kv = dict(x.split("=", 1) for x in line.split(" ") if "=" in x)
        if kv.get("id") == str(me):
            return int(kv["rc-worker"])
    raise rchelper.Failure("connection %d not in CLIENT LIST" % me)


def conn_on(srv, ctl, want, keep):
    """A connection on worker want (dealt in turn: open until one lands there)."""
    for _ in range(8):
        c = srv.conn(timeout=30)
        if worker_of(ctl, c) == want:
            return c
        keep.append(c)
    raise rchelper.Failure("no connection landed on worker %d" % want)


def run(srv, ctl, layout, chan, owner, n):
    other = 1 - owner
    spare = []
    sub = conn_on(srv, ctl, other if layout == "deliver" else owner, spare)
    pub = conn_on(srv, ctl, other if layout == "forward" else owner, spare)
    sub.cmd("SUBSCRIBE", chan)
    payload = b"x" * 64
    frame = rchelper.encode("PUBLISH", chan, payload)
    msg = b"*3\r\n$7\r\nmessage\r\n$%d\r\n%s\r\n$64\r\n%s\r\n" % (len(chan), chan, payload)
    got = bytearray()
    c0 = cpu_seconds(srv.proc.pid)
    t0 = time.monotonic()
    deadline = t0 + 120
    sent = 0
    while sent < n:
        k = min(500, n - sent)
        pub.send(frame * k)
        for _ in range(k):
            r = pub.read(timeout=30)
            if r != 1:
                raise rchelper.Failure("%s: PUBLISH replied %r, not 1" % (layout, r))
        sent += k
        while len(got) < sent * len(msg):
            if time.monotonic() > deadline:
                raise rchelper.Failure("%s: subscriber short of messages" % layout)
            got += sub.sock.recv(1 << 20)
    wall = time.monotonic() - t0
    cpu = cpu_seconds(srv.proc.pid) - c0
    if bytes(got) != msg * n:
        raise rchelper.Failure("%s: the subscriber's stream is not the %d messages" % (layout, n))
    for c in [sub, pub] + spare:
        c.close()
    return cpu, wall


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ringcastd", default=os.path.join(HERE, "..", "build-release", "ringcastd"))
    ap.add_argument("--messages", type=int, default=200000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--io", default="uring")
    a = ap.parse_args()
    os.environ["RINGCASTD"] = os.path.abspath(a.ringcastd)
    chan = b"xpost"
    results = {k: [] for k in ("local", "deliver", "forward")}
    with rchelper.Server(io=a.io, flags=["--workers", "2"]) as srv, srv.conn(timeout=30) as ctl:
        owner = rchelper.channel_owner(ctl, chan)
        for r in range(a.runs):
            for layout in ("local", "deliver", "forward"):
                results[layout].append(run(srv, ctl, layout, chan, owner, a.messages))
    base = statistics.median(c for c, _ in results["local"])
    print("ringcastd --workers 2 --io %s, %d messages of 64 B, 1 subscriber, %d runs each, "
          "medians; server and this script share the machine's cores" % (a.io, a.messages, a.runs))
    print("| layout | server CPU s | ns CPU / message | extra ns / message | wall s |")
    print("|---|---:|---:|---:|---:|")
    for layout, rs in results.items():
        cpu = statistics.median(c for c, _ in rs)
        wall = statistics.median(w for _, w in rs)
        print("| %s | %.3f | %.0f | %s | %.2f |"
              % (layout, cpu, 1e9 * cpu / a.messages,
                 "-" if layout == "local" else "%.0f" % (1e9 * (cpu - base) / a.messages), wall))
    return 0


if __name__ == "__main__":
    sys.exit(main())
