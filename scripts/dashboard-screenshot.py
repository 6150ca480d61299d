#!/usr/bin/python3
"""dashboard-screenshot.py -- takes docs/dashboard.png: the dashboard after a minute of demo load.

Usage: /usr/bin/python3 scripts/dashboard-screenshot.py [BUILD_DIR [OUT.png]]
       (defaults: build, docs/dashboard.png; needs chromium, python3-websockets, python3-redis)

Starts ringcastd (uring) with its HTTP port on a free port and a UDP source,
ringcast-feed at 200 quotes/s, 20 redis-py subscribers on quotes.* (15 more
join after 20 s, so the clients chart moves), opens the dashboard in
headless Chromium through the same DevTools driver as
tests/integration/test_dashboard.py, publishes one non-quote message, and
captures the page after about 70 s. Everything it starts, it stops.

SPDX-License-Identifier: BSD-3-Clause
"""

import os
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))

build = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "build"))
out = os.path.abspath(sys.argv[2] if len(sys.argv) > 2 else os.path.join(ROOT, "docs",
                                                                          "dashboard.png"))
os.environ["RINGCASTD"] = os.path.join(build, "ringcastd")
os.environ["RINGCAST_IO"] = "uring"

import redis  # noqa: E402
import rchelper as rc  # noqa: E402
import test_dashboard as td  # noqa: E402


def main():
    port = rc.free_port()
    subs = []
    with rc.Server(["--http-port", str(port), "--udp-source", "demo", "127.0.0.1:0"]) as srv, \
            srv.conn() as c:
        feed = td.Feed(td.udp_port(c, "demo"), rate=200)
        stop = time.monotonic() + 80

        def subscribe(n):
            for _ in range(n):
                p = redis.Redis(host=rc.HOST, port=srv.port, socket_timeout=5).pubsub()
                p.psubscribe("quotes.*")
                subs.append(p)

        def drain():  # the subscribers read what they get, bounded in time
            while time.monotonic() < stop:
                for p in list(subs):
                    for _ in range(500):
                        if p.get_message(timeout=0) is None:
                            break
                time.sleep(0.05)

        subscribe(20)
        reader = threading.Thread(target=drain)
        reader.start()
        try:
            with td.Browser(td.shutil.which("chromium"), width=1280, height=780) as b:
                b.call("Page.navigate", url="http://127.0.0.1:%d/" % port)
                b.wait_for("document.readyState === 'complete' && typeof uPlot === 'function'",
                           "the page and its scripts loaded")
                b.wait_for("document.getElementById('stream').textContent === 'live'",
                           "the page's event stream opened")
                time.sleep(20)
                subscribe(15)
                time.sleep(30)
                redis.Redis(host=rc.HOST, port=srv.port).publish(
                    "quotes.NEWS", "trading halt lifted at 14:30")
                time.sleep(20)
                png = b.screenshot(out)
                print("%s: %d bytes; page errors: %s" % (out, len(png), b.errors() or "none"))
        finally:
            stop = 0  # ends the reader's loop now (it reads this variable)
            feed.stop()
            reader.join(90)
            for p in subs:
                p.close()


if __name__ == "__main__":
    main()
