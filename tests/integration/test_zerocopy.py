"""Zero-copy sends (send-zc-threshold) on the io_uring backend.

With the threshold set, large contiguous sends go out as io_uring SEND_ZC
and their slab references are released only at the kernel's notification.
Checks that every subscriber still receives every message in order, that
INFO counts zero-copy sends, that a subscriber closing mid-stream does not
disturb the others, and that the feature is off (no SEND_ZC) by default.
Runs on the uring backend only (exit 77 elsewhere).

SPDX-License-Identifier: BSD-3-Clause
"""
import socket
import time

import rchelper
from rchelper import HOST, check, check_eq, encode

SIZE = 4096
N = 400
ALONE = 5


def payload(i):
    head = b"zc:%06d:" % i
    return head + bytes((i + k) & 0xFF for k in range(SIZE - len(head)))


def frame(i):
    p = payload(i)
    return b"*3\r\n$7\r\nmessage\r\n$2\r\nzc\r\n$%d\r\n%s\r\n" % (len(p), p)


def sub(port):
    s = socket.create_connection((HOST, port), timeout=10)
    s.sendall(encode("SUBSCRIBE", "zc"))
    want = b"*3\r\n$9\r\nsubscribe\r\n$2\r\nzc\r\n:1\r\n"
    got = b""
    while len(got) < len(want):
        got += s.recv(len(want) - len(got))
    check_eq(got, want, "subscribe confirmation")
    return s


def read_exact(s, n, deadline):
    buf = bytearray()
    while len(buf) < n:
        s.settimeout(max(0.1, deadline - time.monotonic()))
        chunk = s.recv(min(1 << 20, n - len(buf)))
        if not chunk:
            raise rchelper.Failure("subscriber closed after %d of %d bytes" % (len(buf), n))
        buf += chunk
    return bytes(buf)


def run(flags):
    with rchelper.Server(flags=flags) as srv:
        subs = [sub(srv.port) for _ in range(10)]
        quitter = sub(srv.port)
        pub = srv.conn(timeout=20)
        expect = b"".join(frame(i) for i in range(N))
        deadline = time.monotonic() + 60
        got = [bytearray() for _ in subs]
        for start in range(0, N, 50):
            pub.send(b"".join(encode("PUBLISH", "zc", payload(i)) for i in range(start, start + 50)))
            for _ in range(50):
                pub.read()
            if start == 100:
                quitter.close()  # leaves with sends (possibly zero-copy) in flight
            for k, s in enumerate(subs):
                got[k] += read_exact(s, len(b"".join(frame(i) for i in range(start, start + 50))),
                                     deadline)
        for k in range(len(subs)):
            if bytes(got[k]) != expect:
                raise rchelper.Failure("subscriber %d: stream differs from the published one" % k)
        # Then a few messages one at a time, each read before the next: every
        # send is then one contiguous range, the case SEND_ZC is used for,
        # whatever the batching above did (it depends on timing, and on which
        # worker a subscriber is).
        for i in range(N, N + ALONE):
            check_eq(pub.cmd("PUBLISH", "zc", payload(i)), len(subs), "PUBLISH receivers")
            for s in subs:
                check_eq(read_exact(s, len(frame(i)), deadline), frame(i), "message %d" % i)
        info = rchelper.info_sections(pub.cmd("INFO", "fanout"))["fanout"]
        check(pub.cmd("PING") == "PONG", "server still answers")
        for s in subs:
            s.close()
        return int(info["sends_zc"]), int(info["sends"])


def test_zero_copy_sends_deliver_in_order():
    zc, sends = run(["--send-zc-threshold", "2048"])
    check(zc > 0, "INFO fanout counts zero-copy sends", got=(zc, sends))


def test_off_by_default():
    zc, sends = run([])
    check_eq(zc, 0, "zero-copy sends with the default threshold (off)")
    check(sends > 0, "sends are counted", got=sends)


if __name__ == "__main__":
    if rchelper.is_redis() or rchelper.io_kind() != "uring":
        print("zero-copy sends exist on the uring backend only")
        raise SystemExit(rchelper.SKIP)
    rchelper.run_tests([test_zero_copy_sends_deliver_in_order, test_off_by_default])
