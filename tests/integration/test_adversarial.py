"""Adversarial clients: malformed and hostile input never crashes, hangs or leaks.

1. Protocol errors get Redis 7's exact error text and a clean close (the
   expected bytes were taken from redis-server 7.0; RINGCAST_TARGET=redis
   reruns this file against it).
2. Huge declared lengths (`*999999999`, `$536870912`) are not preallocated.
3. Random bytes and bit-flipped commands from many clients: every answer is
   well-formed RESP and the server recovers (PING, fds, RSS near baseline).
4. A command split into 1-byte writes works; so does a pipeline split so.
5. A request that never completes: client-query-buffer-limit closes it, an
   inline line without newline hits Redis's 64 KiB inline limit, and
   `timeout` closes idle normal clients but never subscribers.
6. Binary channel names and payloads (NUL, CR LF, 0xff, empty, 100 KiB of
   noise) round-trip exactly, for channels, patterns and RESP3.

SPDX-License-Identifier: BSD-3-Clause
"""
import random
import selectors
import socket
import time

import rchelper
from rchelper import HOST, check, check_eq, encode

# (bytes sent, exact reply bytes, connection closed afterwards)
PROTOCOL_CASES = [
    (b"*1\r\n$2147483648\r\n", b"-ERR Protocol error: invalid bulk length\r\n", True),
    (b"*1\r\n$536870913\r\n", b"-ERR Protocol error: invalid bulk length\r\n", True),
    (b"*1\r\n$-5\r\n", b"-ERR Protocol error: invalid bulk length\r\n", True),
    (b"*1\r\n$abc\r\n", b"-ERR Protocol error: invalid bulk length\r\n", True),
    (b"*1\r\n$" + b"9" * 30 + b"\r\n", b"-ERR Protocol error: invalid bulk length\r\n", True),
    (b"*2147483648\r\n", b"-ERR Protocol error: invalid multibulk length\r\n", True),
    (b"*1000000000000000000000\r\n", b"-ERR Protocol error: invalid multibulk length\r\n",
     True),
    (b"*abc\r\n", b"-ERR Protocol error: invalid multibulk length\r\n", True),
    (b"*1\r\n*1\r\n", b"-ERR Protocol error: expected '$', got '*'\r\n", True),
    (b"*1\r\nfoo\r\n", b"-ERR Protocol error: expected '$', got 'f'\r\n", True),
    (b"\"unbalanced\r\n", b"-ERR Protocol error: unbalanced quotes in request\r\n", True),
    # Commands before the error are answered first.
    (b"*1\r\n$4\r\nPING\r\n*-1\r\n*1\r\n$-1\r\n",
     b"+PONG\r\n-ERR Protocol error: invalid bulk length\r\n", True),
    # Negative and zero multibulk counts are skipped, as Redis does.
    (b"*-1\r\n*-5\r\n*0\r\n*1\r\n$4\r\nPING\r\n", b"+PONG\r\n", False),
    # Outside a multibulk, "$..." is an inline command.
    (b"$2147483648\r\n",
     b"-ERR unknown command '$2147483648', with args beginning with: \r\n", False),
]


def read_all(sock, quiet=0.3, maxtime=3.0):
    """Bytes until EOF or `quiet` seconds of silence; returns (bytes, eof)."""
    out = b""
    deadline = time.monotonic() + maxtime
    while time.monotonic() < deadline:
        sock.settimeout(quiet)
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            return out, False
        except ConnectionResetError:
            return out, True
        if not chunk:
            return out, True
        out += chunk
    return out, False


def parse_all(data, who):
    """Every byte of data must be whole, well-formed RESP replies."""
    pos = 0
    n = 0
    while pos < len(data):
        try:
            _, pos = rchelper.parse(data, pos)
        except rchelper.Incomplete:
            raise rchelper.Failure("%s: truncated reply at byte %d: %r"
                                   % (who, pos, data[pos:pos + 80]))
        n += 1
    return n


def test_protocol_errors_exact():
    with rchelper.Server() as srv:
        base = rchelper.baseline(srv)
        for sent, want, closed in PROTOCOL_CASES:
            with socket.create_connection((HOST, srv.port), timeout=5) as s:
                s.sendall(sent)
                got, eof = read_all(s, quiet=0.3)
                check_eq(got, want, "reply to %r" % sent[:40])
                check_eq(eof, closed, "connection closed after %r" % sent[:40])
        rchelper.check_recovered(srv, base)


def test_huge_declared_lengths_not_preallocated():
    """Twenty clients each declare a 999999999-element array or a 512 MiB bulk
    and then stall; the server must not reserve that memory up front."""
    with rchelper.Server() as srv:
        base = rchelper.baseline(srv)
        socks = []
        for i in range(20):
            s = socket.create_connection((HOST, srv.port), timeout=5)
            if i % 2:
                s.sendall(b"*999999999\r\n$4\r\nPING\r\n")
            else:
                s.sendall(b"*2\r\n$7\r\nPUBLISH\r\n$536870912\r\n" + b"x" * 1000)
            socks.append(s)
        time.sleep(0.5)
        check(srv.ping(), "the server answers PING while 20 clients stall in huge requests")
        rss = srv.rss_kb()
        check(rss < base[1] + 64 * 1024, "RSS stays far below the declared sizes",
              "< %d KiB" % (base[1] + 64 * 1024), rss)
        for s in socks:
            s.close()
        rchelper.check_recovered(srv, base)


def test_random_bytes_and_mutations():
    rng = random.Random(20240611)
    valid = [encode("PING"), encode("SUBSCRIBE", "a", "b"), encode("PUBLISH", "a", "x" * 50),
             encode("PSUBSCRIBE", "a*"), encode("HELLO", "3"), encode("CLIENT", "SETNAME", "n"),
             encode("UNSUBSCRIBE"), b"PING\r\n", encode("ECHO", "y" * 300)]
    with rchelper.Server() as srv:
        base = rchelper.baseline(srv)
        for rnd in range(6):
            socks = []
            for i in range(50):
                s = socket.create_connection((HOST, srv.port), timeout=5)
                if i % 3 == 0:
                    data = bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 4096)))
                elif i % 3 == 1:
                    # A valid pipeline with a few bytes flipped.
                    data = bytearray(b"".join(rng.choice(valid) for _ in range(8)))
                    for _ in range(rng.randint(1, 4)):
                        data[rng.randrange(len(data))] = rng.getrandbits(8)
                    data = bytes(data)
                else:
                    # Random RESP-ish tokens.
                    toks = [b"*", b"$", b"\r\n", b"-1", b"0", b"3", b"99999999999", b"PING",
                            b"\x00", b"\xff", b"SUBSCRIBE", b"\r", b"\n", b" ", b"\""]
                    data = b"".join(rng.choice(toks) for _ in range(rng.randint(1, 200)))
                s.sendall(data)
                socks.append((s, data))
            sel = selectors.DefaultSelector()
            got = {}
            for s, _ in socks:
                s.setblocking(False)
                sel.register(s, selectors.EVENT_READ)
                got[s] = b""
            deadline = time.monotonic() + 1.0
            while time.monotonic() < deadline and sel.get_map():
                for key, _ in sel.select(timeout=0.1):
                    try:
                        d = key.fileobj.recv(65536)
                    except BlockingIOError:
                        continue
                    except ConnectionResetError:
                        d = b""
                    if not d:
                        sel.unregister(key.fileobj)
                    else:
                        got[key.fileobj] += d
            sel.close()
            for s, data in socks:
                parse_all(got[s], "client sending %r" % data[:60])
                s.close()
            check(srv.ping(), "PING after random round %d" % rnd)
        rchelper.check_recovered(srv, base)


def test_one_byte_writes():
    def dribble(s, data):
        for i in range(len(data)):
            s.sendall(data[i:i + 1])
            if i % 4 == 0:
                time.sleep(0.0005)

    payload = b"p\r\n\x00" * 50
    with rchelper.Server() as srv:
        sub = srv.conn()
        sub.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        dribble(sub.sock, encode("SUBSCRIBE", "dribble"))
        check_eq(sub.read(), [b"subscribe", b"dribble", 1], "SUBSCRIBE sent byte by byte")
        pub = srv.conn()
        pub.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        dribble(pub.sock, encode("PUBLISH", "dribble", payload))
        check_eq(pub.read(), 1, "PUBLISH sent byte by byte")
        check_eq(sub.read_reply_raw(),
                 b"*3\r\n$7\r\nmessage\r\n$7\r\ndribble\r\n$%d\r\n%s\r\n" % (len(payload),
                                                                          payload),
                 "the message")
        # A pipeline of three commands, inline and multibulk, byte by byte.
        dribble(pub.sock, b"PING\r\n" + encode("ECHO", "a\r\nb") + b"ECHO  \"q\\x41\"  \r\n")
        check_eq(pub.read(), "PONG", "inline PING")
        check_eq(pub.read(), b"a\r\nb", "ECHO")
        check_eq(pub.read(), b"qA", "inline ECHO with quotes and escapes")
        sub.close()
        pub.close()


def test_query_buffer_limit():
    with rchelper.Server(flags=["--client-query-buffer-limit", "1mb"]) as srv:
        base = rchelper.baseline(srv)
        # A bulk that is declared large and never completes.
        with socket.create_connection((HOST, srv.port), timeout=5) as s:
            s.sendall(b"*3\r\n$7\r\nPUBLISH\r\n$1\r\nc\r\n$4000000\r\n")
            closed = False
            chunk = b"z" * 65536
            try:
                for _ in range(64):  # up to 4 MiB, the limit is 1 MiB
                    s.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                closed = True
            if not closed:
                got, closed = read_all(s, quiet=2.0)
                check_eq(got, b"", "no reply before the close")
            check(closed, "a query buffer over 1 MiB closes the connection")
        # An inline line without newline: Redis's 64 KiB inline limit.
        with socket.create_connection((HOST, srv.port), timeout=5) as s:
            try:
                s.sendall(b"a" * (70 * 1024))
            except (BrokenPipeError, ConnectionResetError):
                pass
            got, eof = read_all(s, quiet=2.0)
            check_eq(got, b"-ERR Protocol error: too big inline request\r\n",
                     "reply to a 70 KiB inline line")
            check(eof, "closed after a too big inline request")
        if not rchelper.is_redis():
            check("max query buffer" in srv.log(), "the query-buffer close is logged",
                  got=srv.log()[-800:])
        rchelper.check_recovered(srv, base)


def test_idle_timeout():
    with rchelper.Server(flags=["--timeout", "1"]) as srv:
        idle = srv.conn()
        partial = srv.conn()
        partial.send(b"*2\r\n$4\r\nECHO\r\n$10\r\nabc")  # never completed
        sub = srv.conn()
        check_eq(sub.cmd("SUBSCRIBE", "keep"), [b"subscribe", b"keep", 1], "SUBSCRIBE")
        psub = srv.conn()
        check_eq(psub.cmd("PSUBSCRIBE", "k*"), [b"psubscribe", b"k*", 1], "PSUBSCRIBE")
        t0 = time.monotonic()
        check(idle.expect_closed(6.0), "an idle normal client is closed by timeout 1")
        check(partial.expect_closed(6.0), "a client stuck mid-request is closed by timeout 1")
        elapsed = time.monotonic() - t0
        check(elapsed >= 0.9, "not closed before the timeout", ">= 0.9 s", elapsed)
        time.sleep(1.5)
        pub = srv.conn()
        check_eq(pub.cmd("PUBLISH", "keep", "still"), 2, "subscribers outlive the idle timeout")
        check_eq(sub.read(), [b"message", b"keep", b"still"], "subscriber still receives")
        check_eq(psub.read(), [b"pmessage", b"k*", b"keep", b"still"],
                 "pattern subscriber still receives")
        for c in (sub, psub, pub, idle, partial):
            c.close()


def frame(kind, chan, payload, pattern=None, resp3=False):
    head = b">" if resp3 else b"*"
    if pattern is None:
        return b"%s3\r\n$7\r\nmessage\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (
            head, len(chan), chan, len(payload), payload)
    return b"%s4\r\n$8\r\npmessage\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (
        head, len(pattern), pattern, len(chan), chan, len(payload), payload)


def test_binary_round_trip():
    rng = random.Random(7)
    chans = [b"\x00", b"a\r\nb", b"\xff\xfe\x00", b"", b"\r\n$3\r\n*1", b" spaced \"q\" ",
             bytes(range(1, 64))]
    payloads = [b"", b"\x00" * 10, b"\r\n" * 5, bytes(range(256)), b"$-1\r\n*-1\r\n",
                bytes(rng.getrandbits(8) for _ in range(100 * 1024))]
    with rchelper.Server() as srv:
        base = rchelper.baseline(srv)
        sub = srv.conn()
        sub.send_cmd("SUBSCRIBE", *chans)
        for i, ch in enumerate(chans):
            check_eq(sub.read(), [b"subscribe", ch, i + 1], "SUBSCRIBE %r" % ch)
        psub = srv.conn()
        check_eq(psub.cmd("PSUBSCRIBE", b"*"), [b"psubscribe", b"*", 1], "PSUBSCRIBE *")
        r3 = srv.conn()
        hello = r3.cmd("HELLO", "3")
        check(isinstance(hello, dict), "HELLO 3 returns a map", got=hello)
        r3.send_cmd("SUBSCRIBE", chans[2], chans[3])
        r3.read()
        r3.read()
        pub = srv.conn()
        for ch in chans:
            for p in payloads:
                # Redis's glob quirk: "*" does not match the empty channel name.
                to_psub = ch != b""
                to_r3 = ch in (chans[2], chans[3])
                want = 1 + to_psub + to_r3
                check_eq(pub.cmd("PUBLISH", ch, p), want, "PUBLISH %r" % ch)
                check_eq(sub.read_reply_raw(), frame("message", ch, p),
                         "message on %r (%d bytes)" % (ch, len(p)))
                if to_psub:
                    check_eq(psub.read_reply_raw(), frame("pmessage", ch, p, pattern=b"*"),
                             "pmessage on %r" % ch)
                if to_r3:
                    check_eq(r3.read_reply_raw(), frame("message", ch, p, resp3=True),
                             "RESP3 push on %r" % ch)
        check_eq(pub.cmd("PUBSUB", "NUMSUB", chans[0], chans[3]),
                 [chans[0], 1, chans[3], 2], "PUBSUB NUMSUB with binary names")
        for c in (sub, psub, r3, pub):
            c.close()
        rchelper.check_recovered(srv, base)


if __name__ == "__main__":
    rchelper.run_tests([test_protocol_errors_exact,
                        test_huge_declared_lengths_not_preallocated,
                        test_random_bytes_and_mutations,
                        test_one_byte_writes,
                        test_query_buffer_limit,
                        test_idle_timeout,
                        test_binary_round_trip])
