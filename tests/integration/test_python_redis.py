"""test_python_redis -- ringcastd driven by python3-redis (Debian's redis-py 4.3.x).

A widely used client library exercising pub/sub the way applications do:
PubSub objects with subscribe/psubscribe, a bounded get_message loop,
ordering of many messages, unsubscribe (one and all), pipelines of PUBLISH
with the right receiver counts, PING inside a subscription, CLIENT
SETNAME/GETNAME, PUBSUB helpers, and AUTH with requirepass (the exact NOAUTH
and WRONGPASS texts, and redis-py's AuthenticationError).

SPDX-License-Identifier: BSD-3-Clause
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rchelper as rc  # noqa: E402

try:
    import redis
except ImportError:
    redis = None

SERVER = None


def client(**kw):
    return redis.Redis(host=rc.HOST, port=SERVER.port, socket_timeout=5,
                       socket_connect_timeout=5, **kw)


def next_message(p, timeout=3.0, ignore_subscribe=False):
    """get_message in a bounded loop; fails if nothing arrives in time."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m = p.get_message(ignore_subscribe_messages=ignore_subscribe, timeout=0.2)
        if m is not None:
            return m
    raise rc.Failure("no pub/sub message within %.1fs" % timeout)


def no_message(p, wait=0.2):
    m = p.get_message(timeout=wait)
    rc.check(m is None, "expected no further pub/sub message, got %r" % (m,))


def msg(type_, channel, data, pattern=None):
    return {"type": type_, "pattern": pattern, "channel": channel, "data": data}


def test_subscribe_and_messages():
    r = client()
    p = r.pubsub()
    try:
        p.subscribe("a", "b")
        rc.check_eq(next_message(p), msg("subscribe", b"a", 1), "first subscribe confirmation")
        rc.check_eq(next_message(p), msg("subscribe", b"b", 2), "second subscribe confirmation")
        rc.check_eq(r.publish("a", "hello"), 1, "PUBLISH a (one subscriber)")
        rc.check_eq(r.publish("b", b"bin\x00\r\n\xff"), 1, "PUBLISH b binary")
        rc.check_eq(r.publish("c", "nobody"), 0, "PUBLISH c (no subscriber)")
        rc.check_eq(next_message(p), msg("message", b"a", b"hello"), "message on a")
        rc.check_eq(next_message(p), msg("message", b"b", b"bin\x00\r\n\xff"),
                    "binary message on b")
        no_message(p)
        rc.check_eq(r.pubsub_numsub("a", "b", "c"), [(b"a", 1), (b"b", 1), (b"c", 0)],
                    "pubsub_numsub")
        rc.check_eq(sorted(r.pubsub_channels()), [b"a", b"b"], "pubsub_channels")
        p.unsubscribe("a")
        rc.check_eq(next_message(p), msg("unsubscribe", b"a", 1), "unsubscribe a")
        rc.check_eq(r.publish("a", "gone"), 0, "PUBLISH a after unsubscribe")
        rc.check_eq(r.publish("b", "still"), 1, "PUBLISH b still subscribed")
        rc.check_eq(next_message(p), msg("message", b"b", b"still"), "message on b")
        p.unsubscribe()
        rc.check_eq(next_message(p), msg("unsubscribe", b"b", 0), "unsubscribe all")
        no_message(p)
        rc.check_eq(r.publish("b", "x"), 0, "PUBLISH b after unsubscribe all")
    finally:
        p.close()
        r.close()


def test_psubscribe():
    r = client()
    p = r.pubsub()
    try:
        p.psubscribe("news.*", "h?llo", "[xy]z")
        for i, pat in enumerate((b"news.*", b"h?llo", b"[xy]z")):
            rc.check_eq(next_message(p), msg("psubscribe", pat, i + 1, None),
                        "psubscribe confirmation %d" % (i + 1))
        rc.check_eq(r.pubsub_numpat(), 3, "pubsub_numpat")
        rc.check_eq(r.publish("news.art", "n1"), 1, "PUBLISH news.art")
        rc.check_eq(r.publish("hello", "h1"), 1, "PUBLISH hello")
        rc.check_eq(r.publish("hallo", "h2"), 1, "PUBLISH hallo")
        rc.check_eq(r.publish("hllo", "no"), 0, "PUBLISH hllo (no match)")
        rc.check_eq(r.publish("yz", "z1"), 1, "PUBLISH yz")
        rc.check_eq(r.publish("news", "no"), 0, "PUBLISH news (no match)")
        exp = [msg("pmessage", b"news.art", b"n1", b"news.*"),
               msg("pmessage", b"hello", b"h1", b"h?llo"),
               msg("pmessage", b"hallo", b"h2", b"h?llo"),
               msg("pmessage", b"yz", b"z1", b"[xy]z")]
        for i, e in enumerate(exp):
            rc.check_eq(next_message(p), e, "pmessage %d" % i)
        no_message(p)
        # a plain subscription on a channel the pattern also matches: delivered twice
        p.subscribe("news.tv")
        rc.check_eq(next_message(p), msg("subscribe", b"news.tv", 4), "subscribe news.tv")
        rc.check_eq(r.publish("news.tv", "both"), 2, "PUBLISH to a channel + pattern subscriber")
        got = [next_message(p), next_message(p)]
        want = [msg("pmessage", b"news.tv", b"both", b"news.*"),
                msg("message", b"news.tv", b"both")]
        rc.check(sorted(map(repr, got)) == sorted(map(repr, want)),
                 "channel + pattern delivery", want, got)
        p.punsubscribe("h?llo")
        rc.check_eq(next_message(p), msg("punsubscribe", b"h?llo", 3), "punsubscribe h?llo")
        p.punsubscribe()
        m1, m2 = next_message(p), next_message(p)
        rc.check_eq(sorted([m1["channel"], m2["channel"]]), [b"[xy]z", b"news.*"],
                    "punsubscribe all: patterns")
        rc.check_eq(sorted([m1["data"], m2["data"]]), [1, 2], "punsubscribe all: counts")
        rc.check_eq(r.pubsub_numpat(), 0, "pubsub_numpat after punsubscribe all")
    finally:
        p.close()
        r.close()


def test_order_many():
    r = client()
    p = r.pubsub()
    n = 2000
    try:
        p.subscribe("seq")
        rc.check_eq(next_message(p)["type"], "subscribe", "subscribe seq")
        pipe = r.pipeline(transaction=False)
        for i in range(n):
            pipe.publish("seq", "m%d" % i)
        counts = pipe.execute()
        rc.check_eq(counts, [1] * n, "pipelined PUBLISH counts")
        got = []
        deadline = time.monotonic() + 20
        while len(got) < n and time.monotonic() < deadline:
            m = p.get_message(timeout=0.5)
            if m is not None:
                got.append(m["data"])
        rc.check_eq(len(got), n, "number of messages received")
        bad = [i for i in range(n) if got[i] != b"m%d" % i]
        rc.check(not bad, "messages out of order; first bad index %s: %r"
                 % (bad[:1], got[bad[0]] if bad else None))
        no_message(p)
    finally:
        p.close()
        r.close()


def test_large_payloads():
    r = client()
    p = r.pubsub()
    try:
        p.subscribe("big")
        next_message(p)
        sizes = [0, 1, 16383, 16384, 65537, 1 << 20, 3 * (1 << 20) + 7]
        payloads = [bytes((i * 31 + n) % 256 for i in range(min(n, 4096))) * (n // 4096 + 1)
                    for n in sizes]
        payloads = [pl[:n] for pl, n in zip(payloads, sizes)]
        for pl in payloads:
            rc.check_eq(r.publish("big", pl), 1, "PUBLISH of %d bytes" % len(pl))
        for pl in payloads:
            m = next_message(p, timeout=10)
            rc.check(m["type"] == "message" and m["data"] == pl,
                     "payload of %d bytes arrived intact (got %d bytes, type %s)"
                     % (len(pl), len(m["data"]) if isinstance(m["data"], bytes) else -1,
                        m["type"]))
    finally:
        p.close()
        r.close()


def test_pipeline_counts():
    r = client()
    subs = [client().pubsub() for _ in range(3)]
    try:
        subs[0].subscribe("p1", "p2")
        subs[1].subscribe("p1")
        subs[2].psubscribe("p*")
        for s, n in zip(subs, (2, 1, 1)):
            for _ in range(n):
                rc.check(next_message(s)["type"] in ("subscribe", "psubscribe"),
                         "subscription confirmation")
        deadline = time.monotonic() + 5
        while r.pubsub_numsub("p1") != [(b"p1", 2)] and time.monotonic() < deadline:
            time.sleep(0.01)
        pipe = r.pipeline(transaction=False)
        pipe.publish("p1", "a").publish("p2", "b").publish("p3", "c").publish("q", "d")
        pipe.ping().echo("e")
        rc.check_eq(pipe.execute(), [3, 2, 1, 0, True, b"e"], "pipeline replies")
    finally:
        for s in subs:
            s.close()
        r.close()


def test_ping_in_pubsub():
    r = client()
    p = r.pubsub()
    try:
        p.subscribe("pp")
        next_message(p)
        p.ping()
        m = next_message(p)
        rc.check_eq(m["type"], "pong", "PING inside pubsub: message type")
        rc.check(m["data"] in (b"", None, b"PONG"), "PING inside pubsub data: %r" % (m,))
        p.ping("hey")
        m = next_message(p)
        rc.check_eq((m["type"], m["data"]), ("pong", b"hey"), "PING hey inside pubsub")
        # the connection still works for messages afterwards
        rc.check_eq(r.publish("pp", "after"), 1, "PUBLISH after ping")
        rc.check_eq(next_message(p), msg("message", b"pp", b"after"), "message after ping")
    finally:
        p.close()
        r.close()


def test_client_name():
    r = client()
    try:
        rc.check(r.client_getname() is None, "client_getname before setname: %r"
                 % r.client_getname())
        rc.check_eq(r.client_setname("py-client"), True, "client_setname")
        name = r.client_getname()  # redis-py 4.3 decodes this one reply
        rc.check(name in (b"py-client", "py-client"), "client_getname", "py-client", name)
        cid = r.client_id()
        rc.check(isinstance(cid, int) and cid > 0, "client_id: %r" % cid)
        info = r.client_info()
        rc.check_eq(str(info.get("name")), "py-client", "client_info name")
        rc.check_eq(int(info.get("id")), cid, "client_info id")
        lst = r.client_list()
        mine = [c for c in lst if int(c["id"]) == cid]
        rc.check(len(mine) == 1 and mine[0]["name"] == "py-client",
                 "client_list should contain this client with its name: %r" % lst)
        rc.check_eq(r.echo("x"), b"x", "echo")
        rc.check_eq(r.ping(), True, "ping")
        try:
            r.execute_command("NOSUCHCMD", "a")
            raise rc.Failure("unknown command should raise ResponseError")
        except redis.ResponseError as e:
            rc.check_eq(str(e), "unknown command 'NOSUCHCMD', with args beginning with: 'a' ",
                        "unknown command error text")
    finally:
        r.close()


def test_auth():
    with rc.Server(flags=["--requirepass", "pw"]) as s:
        with s.conn() as c:
            rc.check_eq(c.cmd("PING"), rc.Error("NOAUTH Authentication required."),
                        "PING before AUTH")
            rc.check_eq(c.cmd("SUBSCRIBE", "x"), rc.Error("NOAUTH Authentication required."),
                        "SUBSCRIBE before AUTH")
            rc.check_eq(c.cmd("AUTH", "bad"),
                        rc.Error("WRONGPASS invalid username-password pair or user is disabled."),
                        "AUTH with a wrong password")
            rc.check_eq(c.cmd("AUTH", "default", "bad"),
                        rc.Error("WRONGPASS invalid username-password pair or user is disabled."),
                        "AUTH default <wrong>")
            rc.check_eq(c.cmd("AUTH", "pw"), "OK", "AUTH pw")
            rc.check_eq(c.cmd("PING"), "PONG", "PING after AUTH")
        with s.conn() as c:
            rc.check_eq(c.cmd("AUTH", "default", "pw"), "OK", "AUTH default pw")
            rc.check_eq(c.cmd("PUBLISH", "x", "y"), 0, "PUBLISH after AUTH default pw")
        kw = dict(host=rc.HOST, port=s.port, socket_timeout=5, socket_connect_timeout=5)
        for pw, what in ((None, "no password"), ("nope", "wrong password")):
            r = redis.Redis(password=pw, **kw)
            try:
                r.ping()
                raise rc.Failure("redis-py with %s should fail against requirepass" % what)
            except redis.RedisError as e:
                # redis-py 4.3 raises AuthenticationError for NOAUTH but a plain
                # ResponseError carrying the full WRONGPASS text for a bad password
                text = str(e)
                want = ("Authentication required." if pw is None
                        else "WRONGPASS invalid username-password pair or user is disabled.")
                want_t = redis.AuthenticationError if pw is None else redis.ResponseError
                rc.check_eq(text, want, "redis-py error text with %s" % what)
                rc.check(isinstance(e, want_t), "redis-py error type with %s" % what,
                         want_t.__name__, type(e).__name__)
            finally:
                r.close()
        r = redis.Redis(password="pw", **kw)
        try:
            rc.check_eq(r.ping(), True, "redis-py with the right password")
            p = r.pubsub()
            p.subscribe("authed")
            rc.check_eq(next_message(p), msg("subscribe", b"authed", 1), "subscribe after auth")
            rc.check_eq(r.publish("authed", "z"), 1, "publish after auth")
            rc.check_eq(next_message(p), msg("message", b"authed", b"z"), "message after auth")
            p.close()
        finally:
            r.close()


def main():
    global SERVER
    if redis is None:
        print("the python3 'redis' module is not available (use /usr/bin/python3)")
        sys.exit(rc.SKIP)
    with rc.Server() as s:
        SERVER = s
        rc.run_tests([test_subscribe_and_messages, test_psubscribe, test_order_many,
                      test_large_payloads, test_pipeline_counts, test_ping_in_pubsub, test_client_name, test_auth])


if __name__ == "__main__":
    main()
