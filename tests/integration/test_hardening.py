"""Small hardening items: name length bound, refused settings, exact error texts, INFO.

1. max-name-len (default 1024): SUBSCRIBE, PSUBSCRIBE, SSUBSCRIBE, PUBLISH and
   SPUBLISH refuse a longer name with one error and subscribe nothing of the
   command; 1024 bytes pass; `CONFIG SET max-name-len 0` restores Redis's
   unbounded behaviour.
2. `mdata-rule ... rate=0` is refused (it used to be accepted and do nothing).
3. CONFIG SET of a setting that needs a restart says what Redis 7.0 says for
   immutable settings; an unknown name keeps Redis's unknown-option text.
4. `RC.LASTP <pat> COUNT abc` gets Redis's "value is not an integer or out of
   range".
5. CONFIG GET * lists the settings in the order docs/config.md documents them.
7. A client with 60,000 subscriptions (released in slices after it closes)
   does not hold up others: a healthy subscriber gets all 200 messages
   published right after the close, in order; the channel table empties and
   the descriptor count returns to the baseline. (The stall itself is
   measured by bench/stall.py, not asserted: tests do not time.)
6. INFO fanout has send_syscalls and send_syscalls_per_delivery, consistent
   with the other counters.

SPDX-License-Identifier: BSD-3-Clause
"""
import os
import re

import rchelper
from rchelper import check, check_eq

NAME_ERR = "ERR channel or pattern name longer than max-name-len (1024 bytes)"


def skip_on_redis():
    if rchelper.is_redis():
        raise rchelper.Skip("ringcast's own settings")


def test_max_name_len():
    skip_on_redis()
    with rchelper.Server() as srv:
        c = srv.conn()
        ok = "c" * 1024
        long_ = "c" * 1025
        check_eq(c.cmd("SUBSCRIBE", ok), [b"subscribe", ok.encode(), 1], "1024-byte channel")
        c.send_cmd("SUBSCRIBE", "a", long_, "b")
        check_eq(c.read(), NAME_ERR, "SUBSCRIBE with one name too long")
        check_eq(c.cmd("PSUBSCRIBE", "p" * 1025), NAME_ERR, "PSUBSCRIBE too long")
        check_eq(c.cmd("SSUBSCRIBE", "s" * 1025), NAME_ERR, "SSUBSCRIBE too long")
        # Nothing of the refused commands was subscribed.
        check_eq(c.cmd("UNSUBSCRIBE", "a"), [b"unsubscribe", b"a", 1], "'a' was never added")
        p = srv.conn()
        check_eq(p.cmd("PUBLISH", long_, "x"), NAME_ERR, "PUBLISH to a long channel")
        check_eq(p.cmd("SPUBLISH", long_, "x"), NAME_ERR, "SPUBLISH to a long channel")
        check_eq(p.cmd("PUBSUB", "NUMSUB", ok), [ok.encode(), 1], "the subscriber is still there")
        check_eq(p.cmd("CONFIG", "SET", "max-name-len", "0"), "OK", "CONFIG SET max-name-len 0")
        huge = "h" * 60000
        check_eq(p.cmd("PSUBSCRIBE", huge), [b"psubscribe", huge.encode(), 1],
                 "unbounded with 0, as Redis")
        check_eq(srv.conn().cmd("CONFIG", "GET", "max-name-len"), [b"max-name-len", b"0"],
                 "CONFIG GET")


def test_rate_zero_refused():
    skip_on_redis()
    with rchelper.Server() as srv:
        c = srv.conn()
        r = c.cmd("CONFIG", "SET", "mdata-rule", "q.* rate=0")
        check(isinstance(r, rchelper.Error) and "rate=<1-1000>" in r, "rate=0 is refused", got=r)
        check_eq(c.cmd("CONFIG", "GET", "mdata-rule"), [b"mdata-rule", b""], "no rule was added")
        check_eq(c.cmd("CONFIG", "SET", "mdata-rule", "q.* rate=1"), "OK", "rate=1 is fine")
    log = srv.log()
    with rchelper.Server(wait=False, flags=["--mdata-rule", "q.* rate=0"]) as bad:
        check_eq(bad.proc.wait(10), 1, "ringcastd refuses rate=0 at start-up")
        check("rate=<1-1000>" in bad.log(), "and says why", got=bad.log()[-300:] + log[:0])


def test_config_set_immutable():
    with rchelper.Server() as srv:
        c = srv.conn()
        if rchelper.is_redis():
            name = "daemonize"  # immutable in Redis 7.0
        else:
            name = "port"
        check_eq(c.cmd("CONFIG", "SET", name, "yes" if name == "daemonize" else "7000"),
                 "ERR CONFIG SET failed (possibly related to argument '%s') - can't set "
                 "immutable config" % name, "CONFIG SET %s" % name)
        check_eq(c.cmd("CONFIG", "SET", "nosuchsetting", "1"),
                 "ERR Unknown option or number of arguments for CONFIG SET - 'nosuchsetting'",
                 "CONFIG SET of an unknown name")
        if not rchelper.is_redis():
            for n, v in (("io", "epoll"), ("requirepass", "x"), ("bind", "0.0.0.0")):
                r = c.cmd("CONFIG", "SET", n, v)
                check(isinstance(r, rchelper.Error) and "can't set immutable config" in r,
                      "CONFIG SET %s is immutable" % n, got=r)


def test_lastp_count_not_integer():
    skip_on_redis()
    with rchelper.Server(flags=["--mdata-rule", "q.* last"]) as srv:
        c = srv.conn()
        check_eq(c.cmd("RC.LASTP", "q.*", "COUNT", "abc"),
                 "ERR value is not an integer or out of range", "COUNT abc")
        check_eq(c.cmd("RC.LASTP", "q.*", "COUNT", "0"),
                 "ERR value is out of range, must be positive", "COUNT 0")
        check_eq(c.cmd("PUBLISH", "q.a", "v"), 0, "PUBLISH")
        check_eq(c.cmd("RC.LASTP", "q.*", "COUNT", "5"), [b"q.a", b"v"], "COUNT 5")


def documented_order():
    src = os.environ.get("RINGCAST_SRC", os.path.join(os.path.dirname(__file__), "..", ".."))
    names = []
    with open(os.path.join(src, "docs", "config.md")) as f:
        for line in f:
            if line.startswith("#### "):
                names += re.findall(r"`([a-z0-9-]+)`", line)
    return names


def test_config_get_order_matches_docs():
    skip_on_redis()
    with rchelper.Server() as srv:
        got = srv.conn().cmd("CONFIG", "GET", "*")
    names = [got[i].decode() for i in range(0, len(got), 2)]
    check_eq(names, documented_order(), "CONFIG GET * order vs docs/config.md headings")


def test_info_send_syscalls():
    skip_on_redis()
    with rchelper.Server() as srv:
        sub = srv.conn()
        sub.cmd("SUBSCRIBE", "ch")
        pub = srv.conn()
        pub.send(b"".join(rchelper.encode("PUBLISH", "ch", "m%d" % i) for i in range(1000)))
        for _ in range(1000):
            pub.read()
        for i in range(1000):
            check_eq(sub.read(), [b"message", b"ch", b"m%d" % i], "message %d" % i)
        f = rchelper.info_sections(pub.cmd("INFO", "fanout"))["fanout"]
        deliveries = int(f["deliveries"])
        send = int(f["send_syscalls"])
        total = int(f["syscalls"])
        check_eq(deliveries, 1000, "deliveries")
        check(0 < send <= total, "0 < send_syscalls <= syscalls", total, send)
        check(abs(float(f["send_syscalls_per_delivery"]) - send / deliveries) < 1e-5,
              "send_syscalls_per_delivery = send_syscalls / deliveries",
              send / deliveries, f["send_syscalls_per_delivery"])
        want = sum(int(f.get("sys_" + k, 0)) for k in ("write", "writev", "sendmsg",
                                                       "io_uring_enter"))
        check_eq(send, want, "send_syscalls = write + writev + sendmsg + io_uring_enter")


def test_big_client_teardown():
    with rchelper.Server() as srv:
        base = rchelper.baseline(srv)
        live = srv.conn()
        check_eq(live.cmd("SUBSCRIBE", "live"), [b"subscribe", b"live", 1], "SUBSCRIBE live")
        big = srv.conn(timeout=30)
        n = 60000
        for k in range(0, n, 1000):
            big.send(rchelper.encode("SUBSCRIBE", *["b:%d" % i for i in range(k, k + 1000)]))
        for i in range(n):
            r = big.read()
        check_eq(r, [b"subscribe", b"b:%d" % (n - 1), n], "last confirmation")
        pub = srv.conn()
        check_eq(pub.cmd("PUBSUB", "NUMSUB", "b:0"), [b"b:0", 1], "subscribed")
        big.close()
        for i in range(200):
            pub.send_cmd("PUBLISH", "live", "m%d" % i)
        for i in range(200):
            check_eq(pub.read(), 1, "PUBLISH %d reaches the live subscriber" % i)
        for i in range(200):
            check_eq(live.read(), [b"message", b"live", b"m%d" % i], "message %d" % i)

        def channels():
            st = rchelper.info_sections(pub.cmd("INFO", "stats"))["stats"]
            return st["pubsub_channels"] == "1"
        check(rchelper.wait_until(channels, 20), "the closed client's 60000 channels are gone")
        check_eq(pub.cmd("PUBSUB", "NUMSUB", "b:0", "b:59999"), [b"b:0", 0, b"b:59999", 0],
                 "NUMSUB after the teardown")
        live.close()
        pub.close()
        rchelper.check_recovered(srv, base, rss_slack_kb=64 * 1024)


if __name__ == "__main__":
    rchelper.run_tests([test_max_name_len, test_rate_zero_refused, test_config_set_immutable,
                        test_lastp_count_not_integer, test_config_get_order_matches_docs,
                        test_info_send_syscalls, test_big_client_teardown])
