"""Slow and stalled subscribers: order under pressure, and the output limit.

1. Subscribers with tiny receive buffers that read slowly still get every
   message, in order (the server queues references and resumes short sends).
2. A subscriber that never reads is disconnected by the output limit while
   100 others receive every message in order, the publisher's replies keep
   coming, and INFO counts the disconnect.

SPDX-License-Identifier: BSD-3-Clause
"""
import selectors
import time

import rchelper
from rchelper import check, check_eq, encode

PAYLOAD = 200


def payload(seq):
    return rchelper.seq_payload(seq, PAYLOAD)


def frame(chan, seq):
    return rchelper.message_frame(chan, payload(seq))


def subscriber(port, chan, rcvbuf=None):
    return rchelper.raw_subscriber(port, chan, rcvbuf, timeout=5)


def publish_all(pub, chan, n, batch, receivers):
    """Pipelined PUBLISH in batches; checks every reply's receiver count."""
    sent = 0
    while sent < n:
        k = min(batch, n - sent)
        pub.send(b"".join(encode("PUBLISH", chan, payload(sent + i)) for i in range(k)))
        for _ in range(k):
            r = pub.read(timeout=10)
            check(isinstance(r, int), "PUBLISH reply is an integer", got=r)
            receivers.append(r)
        sent += k


def collect(socks, nbytes_each, deadline, slow=0.0, chunk=1 << 16):
    """Reads from every socket until each has nbytes_each; returns {sock: bytes}."""
    sel = selectors.DefaultSelector()
    got = {}
    for s in socks:
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
        got[s] = bytearray()
    while any(len(got[s]) < nbytes_each for s in socks):
        if time.monotonic() > deadline:
            short = [len(got[s]) for s in socks if len(got[s]) < nbytes_each]
            raise rchelper.Failure("timed out: %d subscribers short (have %s of %d bytes)"
                                   % (len(short), short[:5], nbytes_each))
        for key, _ in sel.select(timeout=0.5):
            s = key.fileobj
            try:
                data = s.recv(chunk)
            except BlockingIOError:
                continue
            if not data:
                raise rchelper.Failure("a subscriber was disconnected unexpectedly")
            got[s] += data
        if slow:
            time.sleep(slow)
    sel.close()
    return got


def read_until(socks, got, total, deadline):
    """Reads until every socket's buffer in got holds at least total bytes."""
    sel = selectors.DefaultSelector()
    for s in socks:
        if len(got[s]) < total:
            s.setblocking(False)
            sel.register(s, selectors.EVENT_READ)
    pending = len(sel.get_map())
    while pending:
        if time.monotonic() > deadline:
            raise rchelper.Failure("timed out: %d subscribers short of %d bytes" % (pending, total))
        for key, _ in sel.select(timeout=0.5):
            s = key.fileobj
            try:
                data = s.recv(1 << 16)
            except BlockingIOError:
                continue
            if not data:
                raise rchelper.Failure("a subscriber was disconnected unexpectedly")
            got[s] += data
            if len(got[s]) >= total:
                sel.unregister(s)
                pending -= 1
    sel.close()


def check_stream(data, chan, n, who):
    expect = b"".join(frame(chan, i) for i in range(n))
    if data != expect:
        fl = len(frame(chan, 0))
        for i in range(n):
            if data[i * fl:(i + 1) * fl] != frame(chan, i):
                raise rchelper.Failure("%s: message %d differs: got %r, expected %r"
                                       % (who, i, bytes(data[i * fl:i * fl + 40]),
                                          frame(chan, i)[:40]))
        raise rchelper.Failure("%s: %d extra bytes after %d messages" % (who, len(data) - len(expect), n))


def test_slow_readers_keep_order():
    n = 4000
    with rchelper.Server() as srv:
        subs = [subscriber(srv.port, b"slow", rcvbuf=4096) for _ in range(10)]
        pub = srv.conn(timeout=20)
        receivers = []
        # Publish in the background of slow reading: alternate a batch and a read round.
        deadline = time.monotonic() + 90
        fl = len(frame(b"slow", 0))
        got = {s: bytearray() for s in subs}
        for s in subs:
            s.setblocking(False)
        sent = 0
        while sent < n:
            k = min(200, n - sent)
            pub.send(b"".join(encode("PUBLISH", b"slow", payload(sent + i)) for i in range(k)))
            for _ in range(k):
                receivers.append(pub.read(timeout=10))
            sent += k
            # A slow read round: at most 2 KiB per subscriber.
            for s in subs:
                try:
                    got[s] += s.recv(2048)
                except BlockingIOError:
                    pass
            check(time.monotonic() < deadline, "publishing finished in time")
        # Each subscriber reads until it has the whole stream: they may be
        # at different points (with workers, on different loops).
        read_until(subs, got, n * fl, deadline)
        check(all(r == 10 for r in receivers), "every PUBLISH reached 10 subscribers",
              got=sorted(set(receivers)))
        for i, s in enumerate(subs):
            check_stream(bytes(got[s][:n * fl]), b"slow", n, "slow subscriber %d" % i)
            s.close()
        pub.close()


def test_stalled_subscriber_dropped_others_complete():
    if rchelper.is_redis():
        raise rchelper.Skip("uses ringcastd's so-sndbuf and INFO fanout")
    n = 3000
    flags = ["--client-output-buffer-limit", "pubsub 256kb 0 0", "--so-sndbuf", "65536"]
    with rchelper.Server(flags=flags) as srv:
        stalled = subscriber(srv.port, b"feed", rcvbuf=4096)
        fast = [subscriber(srv.port, b"feed") for _ in range(100)]
        pub = srv.conn(timeout=20)
        receivers = []
        fl = len(frame(b"feed", 0))
        deadline = time.monotonic() + 120
        got = {s: bytearray() for s in fast}
        sent = 0
        while sent < n:
            k = min(250, n - sent)
            pub.send(b"".join(encode("PUBLISH", b"feed", payload(sent + i)) for i in range(k)))
            for _ in range(k):
                receivers.append(pub.read(timeout=10))
            sent += k
            # The fast subscribers keep up: read this batch before the next.
            read_until(fast, got, sent * fl, deadline)
        need = n * fl
        for i, s in enumerate(fast):
            check_stream(bytes(got[s][:need]), b"feed", n, "fast subscriber %d" % i)
        # Receivers fell from 101 to 100 once the stalled client was dropped.
        check_eq(receivers[0], 101, "receivers of the first message")
        check_eq(receivers[-1], 100, "receivers of the last message")
        stalled.settimeout(5)
        check(rchelper.Conn.expect_closed(type("C", (), {"sock": stalled})(), 5.0),
              "the stalled subscriber's connection is closed")
        info = rchelper.info_sections(pub.cmd("INFO", "fanout"))
        check_eq(info["fanout"]["obuf_disconnects"], "1", "INFO fanout obuf_disconnects")
        check("overcoming of output buffer limits" in srv.log(), "the disconnect is logged",
              got=srv.log()[-500:])
        for s in fast:
            s.close()
        pub.close()


if __name__ == "__main__":
    rchelper.run_tests([test_slow_readers_keep_order,
                        test_stalled_subscriber_dropped_others_complete])
