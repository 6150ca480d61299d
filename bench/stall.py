#!/usr/bin/python3
"""stall.py -- the worst loop stall one client's exit causes others.

Starts ringcastd (or takes --port of a running server), subscribes one
client to N channels (default 500,000, in pipelined SUBSCRIBEs of 1000),
then closes it while a second client sends PING after PING; prints the
longest PING round trip seen from the close until the server reports no
channels, and the same for an UNSUBSCRIBE-all variant is left out (see
docs/robustness.md). Bounded: at most --seconds of probing.

    bench/stall.py --bin build/ringcastd --io uring --channels 500000

SPDX-License-Identifier: BSD-3-Clause
"""
import argparse
import os
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "integration"))
import rchelper  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="build/ringcastd")
    ap.add_argument("--io", default="uring")
    ap.add_argument("--channels", type=int, default=500000)
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--redis", action="store_true", help="measure redis-server instead")
    a = ap.parse_args()
    os.environ["RINGCASTD"] = os.path.abspath(a.bin)
    srv = rchelper.Server(kind="redis" if a.redis else "ringcastd", io=a.io)
    try:
        big = socket.create_connection((rchelper.HOST, srv.port))
        big.settimeout(60)
        per = 1000
        want = 0
        for base in range(0, a.channels, per):
            names = ["chan:%d" % i for i in range(base, min(base + per, a.channels))]
            big.sendall(rchelper.encode("SUBSCRIBE", *names))
            want += len(names)
        # Drain the confirmations: the count of the last one is the total.
        tail = b""
        last = (":%d\r\n" % a.channels).encode()
        while not tail.endswith(last):
            tail = (tail + big.recv(1 << 20))[-64:]
        probe = srv.conn(timeout=10)
        info = rchelper.info_sections(probe.cmd("INFO", "stats"))["stats"]
        print("subscribed: pubsub_channels=%s" % info["pubsub_channels"], flush=True)
        rss0 = srv.rss_kb()
        big.close()
        worst = 0.0
        n = 0
        t_end = time.monotonic() + a.seconds
        while time.monotonic() < t_end:
            t0 = time.monotonic()
            r = probe.cmd("PING")
            dt = time.monotonic() - t0
            n += 1
            worst = max(worst, dt)
            if dt > 0.02:
                print("  slow ping %d: %.1f ms" % (n, dt * 1000), flush=True)
            if n % 50 == 0:
                info = rchelper.info_sections(probe.cmd("INFO", "stats"))["stats"]
                if info["pubsub_channels"] == "0":
                    break
            assert r == "PONG", r
        print("channels=%d io=%s: worst PING round trip during teardown %.2f ms over %d pings; "
              "RSS %d KiB subscribed, %d KiB after" % (a.channels, a.io if not a.redis else "redis",
                                                       worst * 1000, n, rss0, srv.rss_kb()))
    finally:
        srv.close()


if __name__ == "__main__":
    main()
