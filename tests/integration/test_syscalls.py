"""test_syscalls -- system calls per delivery, measured by the server itself.

The claim ringcast exists for: a burst fanned out to many subscribers costs
far fewer system calls than one per message per client. 100 subscribers on
one channel receive a pipelined burst of 2,000 PUBLISH (200,000 deliveries);
every subscriber must get every message, in order, byte for byte. The
server's own counters (INFO fanout: deliveries, syscalls, sys_<kind>) are
read before and after the burst, and the ratio over the burst is checked per
backend (RINGCAST_IO):

  uring  < 0.005 syscalls per delivery (one io_uring_enter per loop
         iteration carries every client's send)
  epoll  < 1.0 (one send per client per iteration; the figure is printed)
  naive  >= 1.0 (one write per message per client, the baseline)

SPDX-License-Identifier: BSD-3-Clause
"""

import os
import select
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rchelper as rc  # noqa: E402

NSUB = 100
NMSG = 2000
CHANNEL = b"feed"
LIMITS = {"uring": (None, 0.005), "epoll": (None, 1.0), "naive": (1.0, None)}


def fanout_info(conn):
    info = conn.cmd("INFO", "fanout")
    rc.check(isinstance(info, bytes), "INFO fanout returns a bulk string", got=info)
    sec = rc.info_sections(info).get("fanout")
    rc.check(sec is not None, "INFO fanout has a '# Fanout' section", got=info[:300])
    for field in ("deliveries", "syscalls", "syscalls_per_delivery", "sys_io_uring_enter"):
        rc.check(field in sec, "INFO fanout has field %s" % field, got=sorted(sec))
    return sec


def read_exact_all(socks, want, timeout=60.0):
    """Reads from every socket until each has len(want) bytes; returns {sock: bytes}."""
    got = {s: bytearray() for s in socks}
    pending = set(socks)
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        ready, _, _ = select.select(list(pending), [], [], max(0.0, deadline - time.monotonic()))
        for s in ready:
            chunk = s.recv(1 << 20)
            if not chunk:
                raise rc.Failure("subscriber connection closed after %d of %d bytes"
                                 % (len(got[s]), len(want)))
            got[s] += chunk
            if len(got[s]) >= len(want):
                pending.discard(s)
    rc.check(not pending, "%d subscribers still missing data after %.0fs (e.g. %d of %d bytes)"
             % (len(pending), timeout, len(got[next(iter(pending))]) if pending else 0,
                len(want)))
    return got


def test_burst_syscalls_per_delivery():
    if rc.is_redis():
        raise rc.Skip("INFO fanout is ringcast's own")
    io = rc.io_kind()
    with rc.Server() as srv:
        ctl = srv.conn()
        backend = rc.info_sections(ctl.cmd("INFO", "server"))["server"].get("io_backend")
        rc.check_eq(backend, io, "INFO server io_backend (no fallback expected here)")
        subs = []
        try:
            for _ in range(NSUB):
                s = socket.create_connection((rc.HOST, srv.port), timeout=10)
                s.sendall(rc.encode("SUBSCRIBE", CHANNEL))
                subs.append(s)
            confirm = b"*3\r\n$9\r\nsubscribe\r\n$%d\r\n%s\r\n:1\r\n" % (len(CHANNEL), CHANNEL)
            got = read_exact_all(subs, confirm, timeout=10)
            for s in subs:
                rc.check_eq(bytes(got[s]), confirm, "SUBSCRIBE confirmation")

            pub = srv.conn(timeout=30)
            burst, want = [], []
            for i in range(NMSG):
                payload = b"msg-%06d" % i
                burst.append(rc.encode("PUBLISH", CHANNEL, payload))
                want.append(b"*3\r\n$7\r\nmessage\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n"
                            % (len(CHANNEL), CHANNEL, len(payload), payload))
            burst, want = b"".join(burst), b"".join(want)

            before = fanout_info(ctl)
            t0 = time.monotonic()
            pub.send(burst)
            for i in range(NMSG):
                r = pub.read(timeout=30)
                if r != NSUB:
                    rc.check_eq(r, NSUB, "reply to PUBLISH #%d (receivers)" % i)
            got = read_exact_all(subs, want)
            elapsed = time.monotonic() - t0
            after = fanout_info(ctl)
        finally:
            for s in subs:
                s.close()

        for n, s in enumerate(subs):
            data = bytes(got[s])
            if data != want:
                k = next((i for i in range(min(len(data), len(want))) if data[i] != want[i]),
                         min(len(data), len(want)))
                raise rc.Failure("subscriber %d: stream differs from the publish order at byte "
                                 "%d: expected %r, got %r" % (n, k, want[k:k + 60], data[k:k + 60]))

        deliveries = int(after["deliveries"]) - int(before["deliveries"])
        syscalls = int(after["syscalls"]) - int(before["syscalls"])
        rc.check_eq(deliveries, NSUB * NMSG, "deliveries counted over the burst")
        kinds = {k[4:]: int(after[k]) - int(before[k]) for k in after if k.startswith("sys_")}
        rc.check_eq(syscalls, sum(kinds.values()), "syscalls equals the sum of sys_<kind>")
        ratio = syscalls / deliveries
        print("    io=%s: %d syscalls for %d deliveries = %.6f per delivery in %.2fs (%s)"
              % (io, syscalls, deliveries, ratio, elapsed,
                 ", ".join("%s=%d" % kv for kv in sorted(kinds.items()) if kv[1])), flush=True)
        lo, hi = LIMITS.get(io, (None, None))
        if lo is not None:
            rc.check(ratio >= lo, "%s: syscalls per delivery >= %g" % (io, lo), got=ratio)
        if hi is not None:
            rc.check(ratio < hi, "%s: syscalls per delivery < %g" % (io, hi), got=ratio)
        if io == "uring":
            for k in ("write", "writev", "sendmsg", "read", "epoll_wait"):
                rc.check_eq(kinds.get(k, 0), 0, "uring: no %s calls on the data path" % k)
        rc.check(srv.alive(), "server still running after the burst")


if __name__ == "__main__":
    rc.run_tests([test_burst_syscalls_per_delivery])
