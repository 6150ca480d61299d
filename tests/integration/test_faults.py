"""Faulty peers: vanishing, half-closed and non-reading clients.

1. Subscribers reset (SO_LINGER 0, close -> RST) while the server is pushing
   a multi-megabyte backlog to them: nothing crashes or leaks, a healthy
   subscriber receives every message in order.
2. Half-close: a client that sends commands and then shutdown(SHUT_WR) still
   gets every reply (small and multi-megabyte) before the server closes.
   A subscriber that sends QUIT on a busy channel is closed after its +OK.
3. A normal client that never reads its replies is dropped by a configured
   normal output limit; the others are served meanwhile.
4. A publisher is never blocked by a stalled subscriber: its PUBLISH round
   trips stay fast while the stalled client's queue fills to megabytes.
(A stalled subscriber dropped by the pubsub output limit while 100 others
 receive everything is test_slow_consumers.py.)

SPDX-License-Identifier: BSD-3-Clause
"""
import socket
import struct
import threading
import time

import rchelper
from rchelper import HOST, check, check_eq, encode


def payload(seq, size):
    head = b"seq:%08d:" % seq
    return head + b"p" * (size - len(head))


def frame(chan, p):
    return b"*3\r\n$7\r\nmessage\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(chan), chan, len(p), p)


def raw_subscriber(port, chan, rcvbuf=None):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(5)
    s.connect((HOST, port))
    s.sendall(encode("SUBSCRIBE", chan))
    want = b"*3\r\n$9\r\nsubscribe\r\n$%d\r\n%s\r\n:1\r\n" % (len(chan), chan)
    got = b""
    while len(got) < len(want):
        d = s.recv(len(want) - len(got))
        check(d, "subscribe confirmation arrives")
        got += d
    check_eq(got, want, "subscribe confirmation")
    return s


def reset_close(s):
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()


def drain(sock, buf, want, deadline):
    """Reads sock into buf until len(buf) >= want."""
    while len(buf) < want:
        left = deadline - time.monotonic()
        check(left > 0, "healthy subscriber received everything in time",
              want, len(buf))
        sock.settimeout(left)
        d = sock.recv(1 << 18)
        check(d, "healthy subscriber still connected")
        buf += d


def test_reset_during_backlog():
    size, per_round, rounds = 20000, 100, 8
    with rchelper.Server() as srv:
        base = rchelper.baseline(srv)
        healthy = raw_subscriber(srv.port, b"big")
        pub = srv.conn(timeout=20)
        got = bytearray()
        seq = 0
        deadline = time.monotonic() + 40
        for rnd in range(rounds):
            victims = [raw_subscriber(srv.port, b"big", rcvbuf=4096) for _ in range(5)]
            pub.send(b"".join(encode("PUBLISH", "big", payload(seq + i, size))
                              for i in range(per_round)))
            # Read half the round, so the server is mid-send to everybody.
            fl = len(frame(b"big", payload(0, size)))
            drain(healthy, got, (seq + per_round // 2) * fl, deadline)
            for v in victims:
                reset_close(v)
            for i in range(per_round):
                r = pub.read(timeout=10)
                check(r in (1, 2, 3, 4, 5, 6), "PUBLISH reply counts the subscribers", got=r)
            seq += per_round
            drain(healthy, got, seq * fl, deadline)
        check(srv.ping(), "PING after the resets")
        want = b"".join(frame(b"big", payload(i, size)) for i in range(seq))
        check(bytes(got) == want, "the healthy subscriber got every message in order",
              len(want), len(got))
        check_eq(pub.cmd("PUBSUB", "NUMSUB", "big"), [b"big", 1], "only the healthy one is left")
        healthy.close()
        pub.close()
        rchelper.check_recovered(srv, base, rss_slack_kb=16384)


def read_to_eof(sock, deadline):
    out = bytearray()
    while True:
        left = deadline - time.monotonic()
        check(left > 0, "the server closes the half-closed connection in time", got=len(out))
        sock.settimeout(left)
        try:
            d = sock.recv(1 << 18)
        except ConnectionResetError:
            raise rchelper.Failure("connection reset after %d bytes: replies lost" % len(out))
        if not d:
            return bytes(out)
        out += d


def test_half_close_gets_replies():
    with rchelper.Server() as srv:
        base = rchelper.baseline(srv)
        # Small replies.
        with socket.create_connection((HOST, srv.port), timeout=5) as s:
            s.sendall(b"".join(encode("PING", "n%d" % i) for i in range(200)) +
                      encode("PUBLISH", "nobody", "x") + encode("ECHO", "last"))
            s.shutdown(socket.SHUT_WR)
            data = read_to_eof(s, time.monotonic() + 5)
            want = b"".join(b"$%d\r\nn%d\r\n" % (len(b"n%d" % i), i) for i in range(200))
            want += b":0\r\n$4\r\nlast\r\n"
            check_eq(data, want, "replies after SHUT_WR")
        # A subscriber that half-closes still gets its confirmation.
        with socket.create_connection((HOST, srv.port), timeout=5) as s:
            s.sendall(encode("SUBSCRIBE", "hc"))
            s.shutdown(socket.SHUT_WR)
            data = read_to_eof(s, time.monotonic() + 5)
            check_eq(data, b"*3\r\n$9\r\nsubscribe\r\n$2\r\nhc\r\n:1\r\n",
                     "SUBSCRIBE reply after SHUT_WR")
        # Replies far larger than the socket buffers. (redis-server 7 drops
        # what is still queued when it reads EOF; ringcastd delivers it.)
        big = b"B" * (1 << 20)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            # Set before connect: shrinking the window of a live connection stalls it.
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
            s.settimeout(5)
            s.connect((HOST, srv.port))
            if rchelper.is_redis():
                s.close()
                return
            s.sendall(b"".join(encode("ECHO", big) for _ in range(4)) + encode("PING"))
            s.shutdown(socket.SHUT_WR)
            time.sleep(0.3)  # the server sees EOF while the replies are still queued
            data = read_to_eof(s, time.monotonic() + 10)
            want = (b"$%d\r\n%s\r\n" % (len(big), big)) * 4 + b"+PONG\r\n"
            check(data == want, "4 MiB of replies after SHUT_WR", len(want), len(data))
        rchelper.check_recovered(srv, base, rss_slack_kb=16384)


def test_quit_while_messages_flow():
    """A subscriber that sends QUIT on a busy channel gets +OK last and is closed
    promptly, although messages keep coming for the others."""
    with rchelper.Server() as srv:
        other = raw_subscriber(srv.port, b"busy")
        quitter = raw_subscriber(srv.port, b"busy")
        stop = threading.Event()
        errors = []

        def publish():
            try:
                with srv.conn(timeout=10) as p:
                    i = 0
                    while not stop.is_set() and i < 200000:
                        p.send(b"".join(encode("PUBLISH", "busy", payload(i + k, 200))
                                        for k in range(50)))
                        for _ in range(50):
                            p.read()
                        i += 50
            except Exception as e:  # noqa: BLE001 -- reported by the main thread
                errors.append(e)

        def drain_other():
            other.settimeout(0.5)
            while not stop.is_set():
                try:
                    if not other.recv(1 << 18):
                        return
                except socket.timeout:
                    pass

        threads = [threading.Thread(target=publish), threading.Thread(target=drain_other)]
        for t in threads:
            t.start()
        try:
            time.sleep(0.3)
            quitter.sendall(encode("QUIT"))
            data = read_to_eof(quitter, time.monotonic() + 5)
            check(data.endswith(b"+OK\r\n"), "+OK is the last thing the quitter receives",
                  got=data[-80:])
        finally:
            stop.set()
            for t in threads:
                t.join(10)
        check(not errors, "the publisher ran without errors", got=errors)
        quitter.close()
        other.close()


def test_never_reading_client_dropped_by_normal_limit():
    # A 64 KiB kernel send buffer keeps the backlog in the server's queue,
    # where the limit sees it; with autotuning the kernel alone could absorb
    # up to tcp_wmem's 4 MiB, and a slow (sanitizer) build might stay below
    # the limit. (redis-server has no so-sndbuf; rchelper drops it there.)
    flags = ["--client-output-buffer-limit", "normal 1mb 0 0", "--so-sndbuf", "65536"]
    with rchelper.Server(flags=flags) as srv:
        base = rchelper.baseline(srv)
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.settimeout(5)
        s.connect((HOST, srv.port))
        other = srv.conn()
        chunk = encode("ECHO", b"e" * 16384)
        closed = False
        sent = 0
        try:
            for _ in range(400):  # 6.4 MiB of replies requested, never read
                s.sendall(chunk)
                sent += 1
                if sent % 50 == 0:
                    check_eq(other.cmd("PING"), "PONG", "another client is served meanwhile")
        except (BrokenPipeError, ConnectionResetError, socket.timeout):
            closed = True
        if not closed:
            try:
                s.recv(1)  # whatever arrived; then the close
                closed = rchelper.Conn.expect_closed(type("C", (), {"sock": s})(), 5.0)
            except ConnectionResetError:
                closed = True
        check(closed, "a client that never reads is closed by the normal output limit")
        s.close()
        check_eq(other.cmd("PING"), "PONG", "the other client is unaffected")
        other.close()
        rchelper.check_recovered(srv, base)


def test_publisher_not_blocked_by_stalled_subscriber():
    size, n = 16384, 1000  # 16 MiB for the stalled one: under the 32 MiB hard limit
    with rchelper.Server() as srv:
        stalled = raw_subscriber(srv.port, b"feed", rcvbuf=4096)
        healthy = raw_subscriber(srv.port, b"feed")
        healthy.setblocking(False)
        pub = srv.conn(timeout=10)
        rtts = []
        got = bytearray()
        for i in range(n):
            t = time.monotonic()
            r = pub.cmd("PUBLISH", "feed", payload(i, size))
            rtts.append(time.monotonic() - t)
            check_eq(r, 2, "PUBLISH %d reaches both subscribers" % i)
            try:
                while True:
                    d = healthy.recv(1 << 18)
                    if not d:
                        break
                    got += d
            except BlockingIOError:
                pass
        rtts.sort()
        med, p99, worst = rtts[n // 2], rtts[n * 99 // 100], rtts[-1]
        print("    PUBLISH round trip: median %.2f ms, p99 %.2f ms, max %.2f ms"
              % (med * 1e3, p99 * 1e3, worst * 1e3), flush=True)
        # The figures above are for reading, not asserted: timing belongs in
        # benchmarks on these shared machines. What is asserted: all 1,000
        # PUBLISH were answered one by one (each reached both subscribers)
        # while the stalled subscriber's backlog grew, and none hung.
        check(worst < 2.0, "no PUBLISH hangs behind the stalled subscriber", "< 2 s", worst)
        fl = len(frame(b"feed", payload(0, size)))
        healthy.setblocking(True)
        drain(healthy, got, n * fl, time.monotonic() + 20)
        check(bytes(got) == b"".join(frame(b"feed", payload(i, size)) for i in range(n)),
              "the healthy subscriber got every message in order")
        if not rchelper.is_redis():
            clients = pub.cmd("CLIENT", "LIST").decode()
            check("sub=1" in clients, "CLIENT LIST lists the subscribers", got=clients)
        stalled.close()
        healthy.close()
        pub.close()


if __name__ == "__main__":
    rchelper.run_tests([test_reset_during_backlog,
                        test_half_close_gets_replies,
                        test_quit_while_messages_flow,
                        test_never_reading_client_dropped_by_normal_limit,
                        test_publisher_not_blocked_by_stalled_subscriber])
