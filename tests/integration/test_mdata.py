"""test_mdata -- the market-data extensions against a real ringcastd.

1. Snapshot then stream: subscribers joining while a publisher is busy get
   the cached last value first, then every later message -- no gap, no
   duplicate -- and python3-redis receives the snapshot as a normal message.
2. Conflation: a stalled subscriber is conflated (bounded server memory,
   a notice, the newest value last) while 100 fast ones receive every
   message in order; INFO, CLIENT LIST and the log report it.
3. Sequence and resume, within and beyond the history.
4. Rate cap; TTL and RC.DEL; CONFIG SET/GET of the rules.
5. With no rule configured nothing changes: no snapshot, RC.LAST is nil.

SPDX-License-Identifier: BSD-3-Clause
"""
import selectors
import socket
import threading
import time

import rchelper
from rchelper import HOST, check, check_eq, encode


def ringcast_only():
    if rchelper.is_redis():
        raise rchelper.Skip("ringcast extension")


def raw_sub(port, *chans, rcvbuf=None):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(5)
    s.connect((HOST, port))
    c = rchelper.Conn.__new__(rchelper.Conn)
    c.sock, c.buf, c.timeout = s, bytearray(), 5
    if chans:
        c.send_cmd("SUBSCRIBE", *chans)
    return c


def msg_frame(chan, data):
    return b"*3\r\n$7\r\nmessage\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(chan), chan, len(data), data)


def per_channel(data):
    """The messages of a RESP stream, by channel, in order."""
    out, pos = {}, 0
    while pos < len(data):
        v, pos = rchelper.parse(data, pos)
        out.setdefault(v[1], []).append(v[2])
    return out


def test_snapshot_then_stream_under_load():
    ringcast_only()
    with rchelper.Server(flags=["--mdata-rule", "q.* last"]) as srv:
        stop = threading.Event()
        published = [0]

        def publisher():
            pub = srv.conn(timeout=10)
            n = 0
            while not stop.is_set() and n < 200000:
                pub.send(b"".join(encode("PUBLISH", "q.x", "n:%d" % (n + i)) for i in range(50)))
                for _ in range(50):
                    pub.read()
                n += 50
                published[0] = n
            pub.close()

        pub = srv.conn()
        pub.cmd("PUBLISH", "q.x", "n:-1")  # something cached before the first join
        t = threading.Thread(target=publisher)
        t.start()
        try:
            joined = []
            for k in range(20):
                time.sleep(0.01)
                joined.append(raw_sub(srv.port, "q.x"))
            time.sleep(0.2)
        finally:
            stop.set()
            t.join(30)
        check(published[0] > 1000, "the publisher was busy", got=published[0])
        last = published[0] - 1
        for k, c in enumerate(joined):
            check_eq(c.read(), [b"subscribe", b"q.x", 1], "subscriber %d confirmation" % k)
            first = c.read()
            check_eq(first[:2], [b"message", b"q.x"], "subscriber %d first message" % k)
            seq = int(first[2].split(b":")[1])
            n = 0
            while seq < last and n < 300000:
                m = c.read()
                check_eq(m[2], b"n:%d" % (seq + 1), "subscriber %d: message after n:%d" % (k, seq))
                seq += 1
                n += 1
            check_eq(seq, last, "subscriber %d reached the last message" % k)
            c.close()
        # python3-redis sees the snapshot as an ordinary message.
        import redis
        r = redis.Redis(host=HOST, port=srv.port, socket_timeout=5)
        ps = r.pubsub()
        ps.subscribe("q.x")
        got = [ps.get_message(timeout=2) for _ in range(2)]
        check_eq(got[1]["type"], "message", "redis-py: snapshot type")
        check_eq(got[1]["data"], b"n:%d" % last, "redis-py: snapshot data")
        ps.close()
        r.close()


def test_conflation_stalled_vs_fast():
    ringcast_only()
    n, chans = 4000, [b"feed.%d" % i for i in range(4)]
    flags = ["--mdata-rule", "feed.* policy=conflate", "--mdata-queue-soft", "64kb",
             "--mdata-queue-low", "0", "--so-sndbuf", "65536"]
    with rchelper.Server(flags=flags) as srv:
        stalled = raw_sub(srv.port, *chans, rcvbuf=4096)
        for _ in chans:
            stalled.read()
        fast = [raw_sub(srv.port, *chans) for _ in range(100)]
        for c in fast:
            for _ in chans:
                c.read()
        pub = srv.conn(timeout=20)
        pay = b"x" * 150
        expect = []
        sel = selectors.DefaultSelector()
        got = {}
        for c in fast:
            c.sock.setblocking(False)
            sel.register(c.sock, selectors.EVENT_READ)
            got[c.sock] = bytearray()
        deadline = time.monotonic() + 120
        for b in range(0, n, 200):
            cmds = []
            for i in range(b, b + 200):
                ch = chans[i % len(chans)]
                data = b"%d:" % i + pay
                cmds.append(encode("PUBLISH", ch, data))
                expect.append(msg_frame(ch, data))
            pub.send(b"".join(cmds))
            for _ in range(200):
                pub.read()
            want = len(b"".join(expect))
            # The fast subscribers keep up with every batch.
            while any(len(g) < want for g in got.values()):
                check(time.monotonic() < deadline, "fast subscribers keep up")
                for key, _ in sel.select(timeout=0.5):
                    try:
                        d = key.fileobj.recv(1 << 16)
                    except BlockingIOError:
                        continue
                    check(d, "a fast subscriber stays connected")
                    got[key.fileobj] += d
        all_msgs = b"".join(expect)
        multi = rchelper.server_workers(srv.port) > 1
        for i, c in enumerate(fast):
            if multi and bytes(got[c.sock]) != all_msgs:
                # Workers keep each channel's order (docs/design.md, "Workers").
                check_eq(per_channel(bytes(got[c.sock])), per_channel(all_msgs),
                         "fast subscriber %d got every channel's messages in order" % i)
                continue
            check(bytes(got[c.sock]) == all_msgs, "fast subscriber %d got everything in order" % i)
        # The stalled client: bounded on the server, conflated, told.
        lines = pub.cmd("CLIENT", "LIST").decode()
        mine = [ln for ln in lines.split("\n") if "rc-slow=1" in ln]
        check_eq(len(mine), 1, "CLIENT LIST shows one client that fell behind")
        omem = int(mine[0].split(" omem=")[1].split(" ")[0])
        pend = int(mine[0].split(" rc-pending=")[1].split(" ")[0])
        check(omem < 200 * 1024, "stalled client's queue stays bounded", got=omem)
        check(pend <= len(chans) * 256, "pending = one message per channel", got=pend)
        info = rchelper.info_sections(pub.cmd("INFO", "mdata"))["mdata"]
        check(int(info["mdata_conflated"]) > n // 2, "INFO mdata_conflated", got=info)
        check_eq(info["mdata_slow_events"], "1", "INFO mdata_slow_events")
        check("fell behind" in srv.log(), "the episode is logged", got=srv.log()[-500:])
        # Now it reads: an ordered subsequence, a notice, then the newest of each channel.
        stalled.sock.settimeout(5)
        data, _ = stalled.read_raw(quiet=0.5, limit=1 << 24, maxtime=20)
        msgs, pos = [], 0
        while pos < len(data):
            v, pos = rchelper.parse(data, pos)
            msgs.append(v)
        notices = [m for m in msgs if m[1] == b"__ringcast__:notice"]
        check_eq(len(notices), 1, "one notice")
        check(notices[0][2].startswith(b"conflated="), "notice text", got=notices[0][2])
        seen = {}
        for m in msgs:
            if m[1] in seen:
                check(int(m[2].split(b":")[0]) > seen[m[1]], "per-channel order kept")
            if m[1] != b"__ringcast__:notice":
                seen[m[1]] = int(m[2].split(b":")[0])
        for k, ch in enumerate(chans):
            check_eq(seen.get(ch), n - len(chans) + k, "newest value of %r delivered" % ch)
        check(len(msgs) < n, "the stalled client did not get the whole backlog", got=len(msgs))
        for c in fast:
            c.close()


def test_resume_within_and_beyond_history():
    ringcast_only()
    with rchelper.Server(flags=["--mdata-rule", "s.* history=10"]) as srv:
        pub = srv.conn()
        for i in range(1, 21):
            pub.cmd("PUBLISH", "s.a", "v%d" % i)
        a = srv.conn()
        check_eq(a.cmd("RC.RESUME", "s.a", 0, 0)[:3], [b"subscribe", b"s.a", 1], "confirmation")
        st = a.read()
        check_eq(st[:3], [b"rc.resume", b"s.a", b"resync"], "unknown epoch: resync")
        epoch = st[3]
        check_eq(st[4], 20, "current sequence")
        b = srv.conn()
        b.cmd("RC.RESUME", "s.a", epoch, 14)
        check_eq(b.read(), [b"rc.resume", b"s.a", b"ok", epoch, 20], "within history: ok")
        for i in range(15, 21):
            check_eq(b.read(), [b"message", b"s.a", b"v%d" % i, epoch, i], "replayed %d" % i)
        pub.cmd("PUBLISH", "s.a", "v21")
        check_eq(b.read(), [b"message", b"s.a", b"v21", epoch, 21], "then live, with seq")
        c = srv.conn()
        c.cmd("RC.RESUME", "s.a", epoch, 5)
        check_eq(c.read()[:3], [b"rc.resume", b"s.a", b"resync"], "beyond history: resync")
        pub.cmd("PUBLISH", "s.a", "v22")
        check_eq(c.read(), [b"message", b"s.a", b"v22", epoch, 22], "live after resync")
        check_eq(b.read(), [b"message", b"s.a", b"v22", epoch, 22], "b gets it too")
        e = c.cmd("RC.RESUME", "nope", 1, 1)
        check(isinstance(e, rchelper.Error), "no sequence rule: error", got=e)
        # RC.DEL resets the history: a new epoch.
        pub.cmd("RC.DEL", "s.a")
        pub.cmd("PUBLISH", "s.a", "w1")
        m = b.read()
        check(m[3] != epoch and m[4] == 1, "new epoch after RC.DEL, seq restarts", got=m)


def test_rate_cap():
    ringcast_only()
    with rchelper.Server(flags=["--mdata-rule", "r.* rate=4"]) as srv:
        sub = raw_sub(srv.port, "r.a")
        sub.read()
        pub = srv.conn()
        t0 = time.monotonic()
        i = 0
        while time.monotonic() - t0 < 1.0 and i < 1000:
            pub.cmd("PUBLISH", "r.a", "%d" % i)
            i += 1
            time.sleep(0.005)
        time.sleep(0.5)
        data, _ = sub.read_raw(quiet=0.3)
        msgs, pos = [], 0
        while pos < len(data):
            v, pos = rchelper.parse(data, pos)
            msgs.append(v)
        check(i > 50, "published many", got=i)
        check(2 <= len(msgs) <= 7, "about 4 per second delivered", got=len(msgs))
        check_eq(msgs[-1][2], b"%d" % (i - 1), "the newest value arrives")
        vals = [int(m[2]) for m in msgs]
        check(vals == sorted(vals), "in order", got=vals)
        info = rchelper.info_sections(pub.cmd("INFO", "mdata"))["mdata"]
        check(int(info["mdata_rate_limited"]) > 40, "INFO mdata_rate_limited", got=info)


def test_ttl_delete_and_config():
    ringcast_only()
    with rchelper.Server() as srv:
        c = srv.conn()
        # Nothing configured: plain Redis behaviour.
        c.cmd("PUBLISH", "t.a", "x")
        check_eq(c.cmd("RC.LAST", "t.a"), None, "no rule, no last value")
        s = raw_sub(srv.port, "t.a")
        check_eq(s.read(), [b"subscribe", b"t.a", 1], "confirmation")
        extra, _ = s.read_raw(quiet=0.2)
        check_eq(extra, b"", "no snapshot without a rule")
        check_eq(c.cmd("CONFIG", "SET", "mdata-rule", "t.* last ttl=1"), "OK", "CONFIG SET")
        check_eq(c.cmd("CONFIG", "GET", "mdata-rule"),
                 [b"mdata-rule", b"t.* last ttl=1 policy=stream"], "CONFIG GET")
        e = c.cmd("CONFIG", "SET", "mdata-rule", "t.* bogus")
        check(isinstance(e, rchelper.Error) and "bogus" in e, "bad rule refused", got=e)
        e = c.cmd("CONFIG", "SET", "port", "1")
        check(isinstance(e, rchelper.Error), "CONFIG SET of a start-up setting refused", got=e)
        c.cmd("PUBLISH", "t.a", "v1")
        c.cmd("PUBLISH", "t.b", "v2")
        check_eq(c.cmd("RC.LAST", "t.a"), b"v1", "RC.LAST")
        check_eq(c.cmd("RC.DEL", "t.b", "t.zz"), 1, "RC.DEL count")
        check_eq(c.cmd("RC.LAST", "t.b"), None, "deleted")
        time.sleep(1.3)
        check_eq(c.cmd("RC.LAST", "t.a"), None, "expired after ttl")
        info = rchelper.info_sections(c.cmd("INFO", "mdata"))["mdata"]
        check_eq(info["mdata_expired"], "1", "INFO mdata_expired")
        check_eq(info["mdata_deleted"], "1", "INFO mdata_deleted")
        check_eq(info["mdata_last_values"], "0", "INFO mdata_last_values")
        # Rules removed: state goes.
        c.cmd("PUBLISH", "t.a", "v3")
        check_eq(c.cmd("CONFIG", "SET", "mdata-rule", ""), "OK", "clear rules")
        check_eq(c.cmd("RC.LAST", "t.a"), None, "no rule, no state")


def memory_figures(n=20000, size=1024, nchan=10):
    """`test_mdata.py --memory`: a stalled subscriber's server memory with and
    without conflation (the figures in docs/extensions.md)."""
    chans = [b"m.%d" % i for i in range(nchan)]
    base = ["--client-output-buffer-limit", "pubsub 0 0 0", "--so-sndbuf", "65536"]
    for label, flags in (("stream (no rule)", base),
                         ("policy=conflate", base + ["--mdata-rule", "m.* policy=conflate"])):
        with rchelper.Server(flags=flags) as srv:
            stalled = raw_sub(srv.port, *chans, rcvbuf=4096)
            for _ in chans:
                stalled.read()
            pub = srv.conn(timeout=30)
            rss0 = srv.rss_kb()
            pay = b"y" * size
            for b in range(0, n, 500):
                pub.send(b"".join(encode("PUBLISH", chans[i % nchan], pay)
                                  for i in range(b, b + 500)))
                for _ in range(500):
                    pub.read()
            line = [ln for ln in pub.cmd("CLIENT", "LIST").decode().split("\n")
                    if " sub=%d " % nchan in ln][0]
            omem = int(line.split(" omem=")[1].split(" ")[0])
            pend = line.split(" rc-pending=")[1].split(" ")[0] if "rc-pending" in line else "-"
            print("%-18s published %d x %d B on %d channels: omem=%d rc-pending=%s "
                  "rss_growth_kb=%d" % (label, n, size, nchan, omem, pend, srv.rss_kb() - rss0))
            stalled.close()


if __name__ == "__main__":
    import sys
    if "--memory" in sys.argv:
        memory_figures()
        sys.exit(0)
    rchelper.run_tests([
        test_snapshot_then_stream_under_load,
        test_conflation_stalled_vs_fast,
        test_resume_within_and_beyond_history,
        test_rate_cap,
        test_ttl_delete_and_config,
    ])
