"""Limits before AUTH: a client without the password cannot make the server buffer much.

With requirepass set, Redis (networking.c, processMultibulkBuffer, since
6.2.6) refuses from an unauthenticated client a multibulk count over 10
("Protocol error: unauthenticated multibulk length") and a bulk length over
16384 ("Protocol error: unauthenticated bulk length"), then closes the
connection, before any of the bytes are buffered.

1. The replies to the boundary cases match redis-server byte for byte,
   including the EOF after the error, and the limits lift after AUTH, HELLO
   AUTH, and come back after RESET.
2. Four unauthenticated clients each announce a 512 MiB bulk (and four more
   an 11-argument request) and then try to stream 64 MiB: the server's RSS
   stays within 16 MiB of its idle figure while they do, and each is closed
   after the error. (Before the limit, four such clients took ringcastd
   from 4 to 1,040 MiB.)

SPDX-License-Identifier: BSD-3-Clause
"""
import re
import socket
import threading
import time

import rchelper
from rchelper import HOST, check, check_eq, encode

PW = "pre-auth-pw"
ERR_MB = b"-ERR Protocol error: unauthenticated multibulk length\r\n"
ERR_BULK = b"-ERR Protocol error: unauthenticated bulk length\r\n"

CASES = [
    b"*11\r\n",
    b"*10\r\n$4\r\nPING\r\n",
    b"*1\r\n$16385\r\n",
    b"*2\r\n$4\r\nECHO\r\n$16384\r\n" + b"x" * 16384 + b"\r\n",
    b"*2\r\n$4\r\nECHO\r\n$16385\r\n" + b"x" * 16385 + b"\r\n",
    b"*2147483648\r\n",
    b"*1\r\n$536870913\r\n",
    b"*1\r\n$536870912\r\n",
    encode("AUTH", PW) + b"*11\r\n",
    encode("AUTH", PW) + b"*2\r\n$4\r\nECHO\r\n$16385\r\n" + b"y" * 16385 + b"\r\n",
    encode("HELLO", "2", "AUTH", "default", PW) + b"*11\r\n",
    encode("AUTH", PW) + encode("RESET") + b"*11\r\n",
    encode("AUTH", "wrong") + b"*11\r\n",
    b"PING " + b"a " * 20 + b"\r\n",  # inline requests have no count line
]


def exchange(port, data):
    with socket.create_connection((HOST, port), timeout=5) as s:
        s.sendall(data)
        out = b""
        eof = False
        s.settimeout(0.5)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                d = s.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                eof = True
                break
            if not d:
                eof = True
                break
            out += d
        return out, eof


def test_replies_match_redis():
    flags = ["--requirepass", PW]
    with rchelper.Server(flags=flags) as rc:
        ours = [exchange(rc.port, d) for d in CASES]
    check_eq(ours[0], (ERR_MB, True), "*11 before AUTH")
    check_eq(ours[2], (ERR_BULK, True), "$16385 before AUTH")
    if rchelper.is_redis():
        return
    rchelper.redis_server_path()
    with rchelper.Server(flags=flags, kind="redis") as rd:
        theirs = [exchange(rd.port, d) for d in CASES]
    def norm(r):  # HELLO's connection id differs
        return re.sub(rb"(\$2\r\nid\r\n):\d+\r\n", rb"\1:N\r\n", r[0]), r[1]
    for d, a, b in zip(CASES, ours, theirs):
        check_eq(norm(a), norm(b), "reply and EOF for %r (ringcastd vs redis-server)" % d[:60])


def stream(port, head, total, result, i):
    """Sends head, then up to total bytes of filler until the server closes."""
    sent = 0
    got = b""
    try:
        s = socket.create_connection((HOST, port), timeout=5)
        s.sendall(head)
        chunk = b"z" * 65536
        deadline = time.monotonic() + 10
        while sent < total and time.monotonic() < deadline:
            s.sendall(chunk)
            sent += len(chunk)
    except OSError:
        pass
    try:
        s.settimeout(2)
        while True:
            d = s.recv(65536)
            if not d:
                break
            got += d
    except OSError:
        pass
    s.close()
    result[i] = (sent, got)


def test_unauthenticated_streams_keep_memory_flat():
    with rchelper.Server(flags=["--requirepass", PW]) as srv:
        base_fds, base_rss = rchelper.baseline(srv)
        heads = [b"*1\r\n$536870912\r\n"] * 4 + [b"*11\r\n"] * 4
        result = [None] * len(heads)
        peak = [base_rss]
        stop = threading.Event()

        def sample():
            while not stop.is_set():
                try:
                    peak[0] = max(peak[0], srv.rss_kb())
                except (OSError, rchelper.Failure):
                    pass
                time.sleep(0.01)

        sampler = threading.Thread(target=sample)
        sampler.start()
        threads = [threading.Thread(target=stream, args=(srv.port, h, 64 << 20, result, i))
                   for i, h in enumerate(heads)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        stop.set()
        sampler.join()
        for i, (sent, got) in enumerate(result):
            want = ERR_BULK if i < 4 else ERR_MB
            check_eq(got, want, "client %d got the refusal, then EOF" % i)
        grown = peak[0] - base_rss
        print("    RSS %d KiB idle, peak %d KiB while 8 clients streamed %d MiB in all"
              % (base_rss, peak[0], sum(r[0] for r in result) >> 20), flush=True)
        if not rchelper.sanitized():
            check(grown < 16 * 1024, "RSS grew less than 16 MiB", "< 16384 KiB", grown)
        rchelper.check_recovered(srv, (base_fds, base_rss))


if __name__ == "__main__":
    rchelper.run_tests([test_replies_match_redis, test_unauthenticated_streams_keep_memory_flat])
