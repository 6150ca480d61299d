"""Connection churn: thousands of connect/subscribe/disconnect cycles leak nothing.

Three rounds of 1000 cycles (50 connections at a time, each subscribing to
a few channels and a pattern, some publishing, leaving in several ways: a
clean close, a reset, QUIT, a close in the middle of a request). After the
first round (the warm-up: allocator arenas, slab cache) the server's RSS is
recorded; after two more rounds it may not have grown beyond allocator
noise, its descriptor count must be back at the baseline, and INFO must
show no clients and no channels left.

SPDX-License-Identifier: BSD-3-Clause
"""
import socket
import struct
import time

import rchelper
from rchelper import HOST, check, check_eq, encode

BATCH = 50
CYCLES_PER_ROUND = 1000
RSS_GROWTH_KB = 2048
WARMUP_ROUNDS = 2


def one_batch(port, rnd, b):
    socks = []
    for i in range(BATCH):
        s = socket.create_connection((HOST, port), timeout=5)
        k = rnd * CYCLES_PER_ROUND + b * BATCH + i
        s.sendall(encode("SUBSCRIBE", "churn:%d" % (k % 97), "churn:all", "own:%d" % k) +
                  encode("PSUBSCRIBE", "churn:*"))
        socks.append((s, k))
    # Everyone got its four confirmations.
    for s, k in socks:
        want = 4
        got = b""
        deadline = time.monotonic() + 5
        while got.count(b"subscribe\r\n") < want:
            check(time.monotonic() < deadline, "subscribe confirmations for client %d" % k,
                  got=got[:200])
            d = s.recv(4096)
            check(d, "connection %d stays open" % k)
            got += d
    # One publish reaches each of them twice: the channel and the pattern.
    with socket.create_connection((HOST, port), timeout=5) as p:
        p.sendall(encode("PUBLISH", "churn:all", "hello"))
        r = p.recv(100)
        check_eq(r, b":%d\r\n" % (2 * BATCH), "PUBLISH churn:all receivers")
    for s, k in socks:
        how = k % 4
        if how == 0:
            s.close()
        elif how == 1:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.close()
        elif how == 2:
            s.sendall(encode("QUIT"))
            s.close()
        else:
            s.sendall(b"*3\r\n$7\r\nPUBLISH\r\n$5\r\nchurn")  # cut mid-request
            s.close()


def run_round(srv, rnd):
    for b in range(CYCLES_PER_ROUND // BATCH):
        one_batch(srv.port, rnd, b)


def settled(srv, base_fds):
    def ok():
        if srv.fds() > base_fds:
            return False
        with srv.conn() as c:
            info = rchelper.info_sections(c.cmd("INFO", "clients"))
            return info["clients"]["connected_clients"] == "1"
    return rchelper.wait_until(ok, 10.0, step=0.1)


def test_churn_no_leak():
    with rchelper.Server() as srv:
        base = rchelper.baseline(srv)
        t0 = time.monotonic()
        # Warm-up: one round per worker, since each worker fills its own
        # slab free list and malloc arena (`--workers 2`: two rounds).
        for rnd in range(WARMUP_ROUNDS):
            run_round(srv, rnd)
            check(settled(srv, base[0]),
                  "after round %d: descriptors and clients back to baseline" % (rnd + 1),
                  base[0], srv.fds())
        warm = srv.rss_kb()
        for rnd in (WARMUP_ROUNDS, WARMUP_ROUNDS + 1):
            run_round(srv, rnd)
            check(settled(srv, base[0]),
                  "after round %d: descriptors and clients back to baseline" % (rnd + 1),
                  base[0], srv.fds())
        time.sleep(0.3)
        rss = srv.rss_kb()
        print("    %d cycles in %.1fs; RSS baseline %d KiB, after warm-up %d KiB, end %d KiB"
              % ((WARMUP_ROUNDS + 2) * CYCLES_PER_ROUND, time.monotonic() - t0, base[1], warm, rss), flush=True)
        check(rchelper.sanitized() or rss <= warm + RSS_GROWTH_KB,
              "RSS flat after the warm-up round",
              "<= %d KiB" % (warm + RSS_GROWTH_KB), rss)
        with srv.conn() as c:
            check_eq(c.cmd("PUBSUB", "NUMPAT"), 0, "no pattern left")
            check_eq(c.cmd("PUBSUB", "CHANNELS"), [], "no channel left")
            if not rchelper.is_redis():
                info = rchelper.info_sections(c.cmd("INFO"))
                check_eq(info["clients"]["connected_clients"], "1", "connected_clients")
                total = int(info["stats"]["total_connections_received"])
                check(total >= 3 * CYCLES_PER_ROUND + 3 * (CYCLES_PER_ROUND // BATCH),
                      "INFO counts every connection", ">= 3060", total)
        rchelper.check_recovered(srv, base, rss_slack_kb=warm - base[1] + RSS_GROWTH_KB)


if __name__ == "__main__":
    rchelper.run_tests([test_churn_no_leak])
