"""maxmemory: a ceiling on what the server holds for clients, whatever the per-client limits.

Per-client output limits off (`client-output-buffer-limit pubsub 0 0 0`), one
subscriber that never reads, one healthy subscriber on the same channel and
a publisher. The publisher never lets the healthy subscriber fall more than
LAG messages behind, so that subscriber's queue stays small.

1. maxmemory 16mb, 120 MB published: the stalled subscriber is disconnected
   (INFO memory: maxmemory_disconnects 1) and sees EOF; the healthy one gets
   every message, in order; used_memory_peak stays within the ceiling plus
   one publish batch; RSS stays under baseline + ceiling + 48 MiB (malloc
   keeps up to 64 MiB of freed memory, M_TRIM_THRESHOLD in main.c, but the
   heap's peak is what was live at once).
2. With `mdata-rule "q.* policy=conflate"` (and mdata-queue-soft raised so the
   rule alone never triggers), the stalled subscriber is conflated instead:
   maxmemory_conflations 1, no disconnect, and when it finally reads it gets
   a notice on __ringcast__:notice saying how many messages were conflated.
3. INFO memory reports used, peak and the ceiling; the automatic ceiling
   (maxmemory 0) is half the machine's memory; CONFIG SET maxmemory works.

SPDX-License-Identifier: BSD-3-Clause
"""
import threading
import time

import rchelper
from rchelper import check, check_eq, encode

SIZE = 1000
LAG = 200
BATCH = 100


def payload(seq):
    return rchelper.seq_payload(seq, SIZE)


def frame(chan, seq):
    return rchelper.message_frame(chan, payload(seq))


def subscriber(port, chan, rcvbuf=None):
    return rchelper.raw_subscriber(port, chan, rcvbuf, timeout=10)


class Healthy(threading.Thread):
    """Reads and checks every frame as it comes; counts the good ones."""

    def __init__(self, sock, chan):
        super().__init__(daemon=True)
        self.sock, self.chan = sock, chan
        self.n = 0
        self.bad = None
        self.fl = len(frame(chan, 0))

    def run(self):
        buf = bytearray()
        while self.bad is None:
            try:
                d = self.sock.recv(1 << 18)
            except OSError as e:
                self.bad = "recv: %s" % e
                return
            if not d:
                return
            buf += d
            k = 0
            while len(buf) - k >= self.fl:
                if buf[k:k + self.fl] != frame(self.chan, self.n):
                    self.bad = "message %d differs: %r" % (self.n, bytes(buf[k:k + 80]))
                    return
                k += self.fl
                self.n += 1
            del buf[:k]


def publish_all(srv, chan, total, healthy, sampler):
    pub = srv.conn(timeout=20)
    deadline = time.monotonic() + 120
    sent = 0
    while sent < total and time.monotonic() < deadline:
        while sent - healthy.n > LAG and healthy.bad is None and time.monotonic() < deadline:
            time.sleep(0.0005)
        n = min(BATCH, total - sent)
        pub.send(b"".join(encode("PUBLISH", chan, payload(sent + i)) for i in range(n)))
        for _ in range(n):
            r = pub.read()
            check(isinstance(r, int), "PUBLISH reply", got=r)
        sent += n
        sampler()
    check_eq(sent, total, "messages published in time")
    return pub


def run(flags, chan, total, conflate):
    with rchelper.Server(flags=flags) as srv:
        base = rchelper.baseline(srv)
        stalled = subscriber(srv.port, chan, rcvbuf=4096)
        good = Healthy(subscriber(srv.port, chan), chan)
        good.start()
        peak_rss = [base[1]]

        def sample():
            peak_rss[0] = max(peak_rss[0], srv.rss_kb())

        pub = publish_all(srv, chan, total, good, sample)
        done = rchelper.wait_until(lambda: good.n >= total or good.bad, 30)
        check(good.bad is None, "healthy subscriber: every message intact", got=good.bad)
        check_eq(good.n, total, "healthy subscriber received every message (done=%r)" % done)
        mem = rchelper.info_sections(pub.cmd("INFO", "memory"))["memory"]
        print("    used_memory_peak %s, maxmemory %s, RSS %d KiB idle / %d KiB peak, "
              "disconnects %s, conflations %s" % (mem["used_memory_peak"], mem["maxmemory"],
                                                 base[1], peak_rss[0],
                                                 mem["maxmemory_disconnects"],
                                                 mem["maxmemory_conflations"]), flush=True)
        ceiling = int(mem["maxmemory"])
        check(int(mem["used_memory_peak"]) <= ceiling + 2 * 1024 * 1024,
              "used_memory_peak within the ceiling plus one batch",
              "<= %d" % (ceiling + 2 * 1024 * 1024), mem["used_memory_peak"])
        if not rchelper.sanitized():
            limit = base[1] + ceiling // 1024 + 48 * 1024
            check(peak_rss[0] <= limit, "peak RSS within baseline + ceiling + 48 MiB",
                  "<= %d KiB" % limit, peak_rss[0])
        if conflate:
            check_eq(mem["maxmemory_conflations"], "1", "the stalled subscriber was conflated")
            check_eq(mem["maxmemory_disconnects"], "0", "nobody was disconnected")
            # Now it reads: the backlog, then the notice of what was conflated.
            stalled.settimeout(5)
            got = b""
            deadline = time.monotonic() + 20
            while b"__ringcast__:notice" not in got and time.monotonic() < deadline:
                d = stalled.recv(1 << 20)
                if not d:
                    break
                got = got[-4096:] + d
            check(b"__ringcast__:notice" in got and b"conflated=" in got,
                  "the conflated subscriber is told", got=got[-300:])
        else:
            check_eq(mem["maxmemory_disconnects"], "1", "the stalled subscriber was disconnected")
            stalled.settimeout(10)
            eof = False
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                try:
                    if not stalled.recv(1 << 20):
                        eof = True
                        break
                except ConnectionResetError:
                    eof = True
                    break
            check(eof, "the stalled subscriber's connection was closed")
            check("maxmemory reached" in srv.log(), "the disconnect is logged",
                  got=srv.log()[-1000:])
        stalled.close()
        good.sock.close()
        pub.close()


def test_stalled_subscriber_disconnected_at_ceiling():
    if rchelper.is_redis():
        raise rchelper.Skip("redis-server's maxmemory evicts keys, not subscribers")
    run(["--client-output-buffer-limit", "pubsub 0 0 0", "--maxmemory", "16mb",
         "--so-sndbuf", "65536"], b"mm", 120000, conflate=False)


def test_stalled_subscriber_conflated_at_ceiling():
    if rchelper.is_redis():
        raise rchelper.Skip("ringcast's market-data rules")
    run(["--client-output-buffer-limit", "pubsub 0 0 0", "--maxmemory", "8mb",
         "--so-sndbuf", "65536", "--mdata-rule", "q.* policy=conflate",
         "--mdata-queue-soft", "1gb"], b"q.a", 30000, conflate=True)


def test_info_memory_and_config():
    if rchelper.is_redis():
        raise rchelper.Skip("ringcast's INFO memory fields")
    with rchelper.Server() as srv:
        c = srv.conn()
        mem = rchelper.info_sections(c.cmd("INFO", "memory"))["memory"]
        for f in ("used_memory", "used_memory_peak", "maxmemory", "mem_slabs",
                  "maxmemory_disconnects"):
            check(f in mem, "INFO memory has %s" % f, got=sorted(mem))
        check_eq(mem["maxmemory_auto"], "1", "default ceiling is automatic")
        with open("/proc/meminfo") as f:
            total = int(f.readline().split()[1]) * 1024
        ceiling = int(mem["maxmemory"])
        check(0 < ceiling <= total // 2 + 4096, "automatic ceiling is at most half the RAM",
              "<= %d" % (total // 2), ceiling)
        check(int(mem["used_memory"]) <= int(mem["used_memory_peak"]), "used <= peak")
        check_eq(c.cmd("CONFIG", "GET", "maxmemory"), [b"maxmemory", b"0"], "CONFIG GET")
        check_eq(c.cmd("CONFIG", "SET", "maxmemory", "100mb"), "OK", "CONFIG SET maxmemory")
        mem = rchelper.info_sections(c.cmd("INFO", "memory"))["memory"]
        check_eq(mem["maxmemory"], str(100 << 20), "the ceiling after CONFIG SET")
        check_eq(mem["maxmemory_auto"], "0", "not automatic any more")
        check_eq(c.cmd("CONFIG", "SET", "maxmemory", "-1"),
                 "ERR CONFIG SET failed (possibly related to argument 'maxmemory') - "
                 "argument must be a memory value", "a bad value")


if __name__ == "__main__":
    rchelper.run_tests([test_stalled_subscriber_disconnected_at_ceiling,
                        test_stalled_subscriber_conflated_at_ceiling,
                        test_info_memory_and_config])
