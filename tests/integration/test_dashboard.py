"""test_dashboard -- the dashboard (GET /) in a real headless Chromium, driven over DevTools.

A real ringcastd serves its embedded page on the HTTP port while
ringcast-feed sends it live quotes over UDP. Debian's chromium loads the
page; this file drives it through the DevTools protocol (a websocket, with
Debian's python3-websockets) and reads the DOM with Runtime.evaluate,
polling with a bound on time, never a fixed sleep. Checked:

  - every embedded file is served with its content type (curl-free: urllib),
    and byte for byte equals web/ in the source tree;
  - the page loads with no JavaScript error and its event stream opens;
  - a quote published with redis-py AFTER the page loaded (its row did not
    exist before) appears on the board with its exact values, and a
    non-JSON payload appears as raw text -- as text, not parsed as HTML;
  - the charts are drawn (three uPlot canvases) and the header shows what the
    page parsed out of /metrics (version and backend);
  - a screenshot is saved in the build directory (artifacts/dashboard.png);
  - the browser's own WebSocket subscribes and receives, and its own
    EventSource, cut off by the server (CLIENT KILL), reconnects with
    Last-Event-ID and ends with every message of a history channel exactly
    once and in order, those published while it was away included.

Runs once, on the uring pass of the suite (skipped, exit 77, for epoll and
naive): the page does not depend on the backend and Chromium is slow to start.
Without chromium or python3-websockets it skips, except under CI=true, where
scripts/deps.sh --all installs them and their absence is a failure.

SPDX-License-Identifier: BSD-3-Clause
"""

import asyncio
import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rchelper as rc  # noqa: E402

START_TIMEOUT = 30.0  # Chromium's first start on a busy 2-core machine
STEP_TIMEOUT = 15.0
ASSETS = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/style.css": ("style.css", "text/css; charset=utf-8"),
    "/vendor/uplot/uPlot.iife.min.js": ("vendor/uplot/uPlot.iife.min.js",
                                        "text/javascript; charset=utf-8"),
    "/vendor/uplot/uPlot.min.css": ("vendor/uplot/uPlot.min.css", "text/css; charset=utf-8"),
    "/vendor/uplot/LICENSE": ("vendor/uplot/LICENSE", "text/plain; charset=utf-8"),
}


def in_ci():
    return os.environ.get("CI") == "true"


def need(what, ok):
    """Skips when a tool is missing, except in CI where deps.sh --all installs it."""
    if ok:
        return
    if in_ci():
        raise rc.Failure("%s is missing (CI installs it: scripts/deps.sh --all)" % what)
    raise rc.Skip("%s is not installed (scripts/deps.sh --all)" % what)


def need_setup():
    if rc.is_redis():
        raise rc.Skip("the dashboard is ringcast's own")
    if rc.io_kind() != "uring":
        raise rc.Skip("runs once, on the uring pass (the page does not depend on the backend)")


def need_browser():
    """chromium's path, once chromium and python3-websockets are known to be there."""
    need_setup()
    chromium = shutil.which("chromium")
    need("chromium", chromium)
    try:
        import websockets  # noqa: F401
        have_ws = True
    except ImportError:
        have_ws = False
    need("python3-websockets", have_ws)
    return chromium


def build_dir():
    return os.path.dirname(os.path.abspath(rc.ringcastd_path()))


def src_dir():
    return os.environ.get("RINGCAST_SRC",
                          os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))


def http_get(url, timeout=5.0):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.status, r.headers.get("Content-Type"), r.read()


class Browser:
    """Headless Chromium in a fresh profile, driven over the DevTools protocol.

    Started in its own session so that its helper processes can be ended with
    it; stop() ends exactly that process group, which this object created."""

    def __init__(self, chromium, width=1280, height=860):
        import websockets  # Debian python3-websockets (10.x: the asyncio API)
        self.websockets = websockets
        self.width, self.height = width, height
        self.profile = tempfile.mkdtemp(prefix="rc-chromium-")
        self.logf = tempfile.NamedTemporaryFile(prefix="rc-chromium-", suffix=".log",
                                                delete=False)
        argv = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--disable-extensions",
                "--disable-default-apps", "--mute-audio", "--hide-scrollbars",
                "--user-data-dir=" + self.profile, "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0", "--window-size=%d,%d" % (width, height),
                "about:blank"]
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self.logf,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        self.loop = asyncio.new_event_loop()
        self.ws = None
        self.next_id = 0
        self.events = []
        try:
            self._attach()
        except BaseException:
            self.stop()
            raise

    def _attach(self):
        # Chromium writes the port it picked into DevToolsActivePort.
        portfile = os.path.join(self.profile, "DevToolsActivePort")
        port = rc.wait_until(lambda: self._read_port(portfile), START_TIMEOUT, step=0.1)
        rc.check(port, "chromium started and wrote DevToolsActivePort",
                 got=None if port else self.log()[-3000:])
        base = "http://127.0.0.1:%d" % port

        def page_target():
            try:
                _, _, body = http_get(base + "/json/list", timeout=2.0)
            except OSError:
                return None
            pages = [t for t in json.loads(body) if t.get("type") == "page"]
            return pages[0]["webSocketDebuggerUrl"] if pages else None

        url = rc.wait_until(page_target, STEP_TIMEOUT, step=0.1)
        rc.check(url, "chromium lists a page target", got=self.log()[-3000:])
        self.ws = self.loop.run_until_complete(asyncio.wait_for(self._connect(url), STEP_TIMEOUT))
        self.call("Page.enable")
        self.call("Runtime.enable")
        # --window-size does not size the page of the new headless mode.
        self.call("Emulation.setDeviceMetricsOverride", width=self.width, height=self.height,
                  deviceScaleFactor=1, mobile=False)

    async def _connect(self, url):
        # Made inside the running loop: websockets 10 binds to the current one.
        return await self.websockets.connect(url, max_size=None)

    def _read_port(self, path):
        if self.proc.poll() is not None:
            raise rc.Failure("chromium exited with code %d:\n%s"
                             % (self.proc.returncode, self.log()[-3000:]))
        try:
            with open(path) as f:
                first = f.readline().strip()
            return int(first) if first.isdigit() else None
        except OSError:
            return None

    async def _call(self, method, params):
        self.next_id += 1
        mid = self.next_id
        await self.ws.send(json.dumps({"id": mid, "method": method, "params": params}))
        while True:
            msg = json.loads(await self.ws.recv())
            if msg.get("id") == mid:
                if "error" in msg:
                    raise rc.Failure("DevTools %s: %s" % (method, msg["error"]))
                return msg.get("result", {})
            if msg.get("method") in ("Runtime.exceptionThrown", "Runtime.consoleAPICalled") \
                    and len(self.events) < 1000:
                self.events.append(msg)

    def call(self, method, timeout=STEP_TIMEOUT, **params):
        return self.loop.run_until_complete(
            asyncio.wait_for(self._call(method, params), timeout))

    def eval(self, expr):
        r = self.call("Runtime.evaluate", expression=expr, returnByValue=True)
        if "exceptionDetails" in r:
            raise rc.Failure("page script %r threw: %s" % (expr, r["exceptionDetails"]))
        return r.get("result", {}).get("value")

    def wait_for(self, expr, what, timeout=STEP_TIMEOUT):
        """Polls a page expression until it is truthy; its last value."""
        v = rc.wait_until(lambda: self.eval(expr), timeout, step=0.1)
        rc.check(v, what, "a true value of %s within %.0f s" % (expr, timeout), v)
        return v

    def errors(self):
        """JavaScript exceptions and console errors the page reported so far."""
        out = []
        for e in self.events:
            if e["method"] == "Runtime.exceptionThrown":
                out.append(e["params"]["exceptionDetails"].get("text", "exception"))
            elif e["method"] == "Runtime.consoleAPICalled" and e["params"]["type"] == "error":
                out.append(" ".join(str(a.get("value", a.get("description", "")))
                                    for a in e["params"]["args"]))
        return out

    def screenshot(self, path):
        r = self.call("Page.captureScreenshot", format="png", captureBeyondViewport=False)
        data = base64.b64decode(r["data"])
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
        return data

    def log(self):
        try:
            with open(self.logf.name, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def stop(self):
        if self.ws is not None:
            try:
                self.loop.run_until_complete(asyncio.wait_for(self.ws.close(), 5.0))
            except Exception:  # noqa: BLE001 -- closing a browser we are ending anyway
                pass
            self.ws = None
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # its helpers, in the session it led
        except OSError:
            pass
        self.loop.close()
        self.logf.close()
        os.unlink(self.logf.name)
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def udp_port(conn, name):
    info = rc.info_sections(conn.cmd("INFO", "sources"))["sources"]
    for k, v in info.items():
        fields = dict(kv.split("=", 1) for kv in v.split(",")) if "=" in v else {}
        if fields.get("name") == name:
            return int(fields["addr"].rsplit(":", 1)[1])
    raise rc.Failure("no UDP source %s in INFO sources" % name)


class Feed:
    """ringcast-feed sending quotes to the server's UDP source until stop()."""

    def __init__(self, port, rate=40):
        path = os.path.join(build_dir(), "ringcast-feed")
        rc.check(os.access(path, os.X_OK), "ringcast-feed is built next to ringcastd", got=path)
        self.proc = subprocess.Popen([path, "--udp", "127.0.0.1:%d" % port, "--rate", str(rate),
                                      "--seed", "7", "--quiet", "--exit-with-parent"],
                                     stdin=subprocess.DEVNULL)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def test_assets_served():
    need_setup()
    port = rc.free_port()
    with rc.Server(["--http-port", str(port)]):
        for path, (name, ctype) in ASSETS.items():
            status, got_type, body = http_get("http://127.0.0.1:%d%s" % (port, path))
            rc.check_eq(status, 200, "GET %s status" % path)
            rc.check_eq(got_type, ctype, "GET %s Content-Type" % path)
            with open(os.path.join(src_dir(), "web", name), "rb") as f:
                rc.check(body == f.read(), "GET %s is web/%s byte for byte" % (path, name))


def test_board_shows_quotes_published_after_load():
    chromium = need_browser()
    import redis

    port = rc.free_port()
    with rc.Server(["--http-port", str(port), "--udp-source", "demo", "127.0.0.1:0"]) as srv, \
            srv.conn() as c:
        feed = Feed(udp_port(c, "demo"))
        try:
            with Browser(chromium) as b:
                r = redis.Redis(host=rc.HOST, port=srv.port, socket_timeout=5)
                check_page(b, port, r)
                r.close()
        finally:
            feed.stop()


def test_browser_websocket_and_event_stream_resume():
    """The browser's own WebSocket and EventSource against the server, on a page of its origin.

    A WebSocket subscribes and receives a message published with redis-py;
    an EventSource on a channel with history is cut off by the server
    (CLIENT KILL), reconnects by itself with Last-Event-ID, and ends up with
    every message exactly once, those published while it was away included."""
    chromium = need_browser()
    import redis

    port = rc.free_port()
    with rc.Server(["--http-port", str(port), "--mdata-rule", "hist.* history=100"]) as srv, \
            Browser(chromium) as b:
        r = redis.Redis(host=rc.HOST, port=srv.port, socket_timeout=5)
        b.call("Page.navigate", url="http://127.0.0.1:%d/healthz" % port)
        b.wait_for("document.readyState === 'complete'", "a page of the server's origin")
        b.eval("""window.wsGot = []; window.ws = new WebSocket('ws://' + location.host + '/ws');
                  ws.onopen = () => ws.send(JSON.stringify(['SUBSCRIBE', 'browser.ws']));
                  ws.onmessage = e => wsGot.push(JSON.parse(e.data)); true""")
        b.wait_for("wsGot.length >= 1 && wsGot[0][0] === 'subscribe'",
                   "the browser's WebSocket subscribed")
        rc.check_eq(r.publish("browser.ws", "to the browser ✓"), 1, "PUBLISH counts the browser")
        b.wait_for("wsGot.length >= 2", "a message on the browser's WebSocket")
        rc.check_eq(b.eval("JSON.stringify(wsGot)"),
                    json.dumps([["subscribe", "browser.ws", 1],
                                ["message", "browser.ws", "to the browser ✓"]],
                               ensure_ascii=False, separators=(",", ":")),
                    "what the browser's WebSocket received")

        b.eval("""window.esGot = []; window.esOpens = 0;
                  window.es = new EventSource('/events?channel=hist.b');
                  es.onopen = () => esOpens++;
                  es.onmessage = e => esGot.push([e.lastEventId, JSON.parse(e.data).data]); true""")
        b.wait_for("esOpens === 1", "the browser's event stream opened")
        for i in range(3):
            r.publish("hist.b", "m%d" % i)
        b.wait_for("esGot.length === 3", "three live events")
        # Cut the stream from the server side; publish while the browser is away.
        killed = r.execute_command("CLIENT", "KILL", "TYPE", "pubsub")
        rc.check(killed >= 2, "CLIENT KILL cut the browser's stream (and its WebSocket)", ">= 2",
                 killed)
        for i in range(3, 6):
            r.publish("hist.b", "m%d" % i)
        b.wait_for("esOpens === 2", "the EventSource reconnected by itself", timeout=30)
        b.wait_for("esGot.length >= 6", "the missed events after the reconnect", timeout=30)
        r.publish("hist.b", "m6")
        b.wait_for("esGot.length >= 7", "live again after the replay")
        got = b.eval("JSON.stringify(esGot)")
        seqs = [(int(i.split("-")[1]), d) for i, d in json.loads(got)]
        rc.check_eq(seqs, [(n + 1, "m%d" % n) for n in range(7)],
                    "every message exactly once, in order, with its sequence as the event id")
        rc.check_eq(b.errors(), [], "no JavaScript errors")
        r.close()


def check_page(b, port, r):
    url = "http://127.0.0.1:%d/" % port
    b.call("Page.navigate", url=url)
    b.wait_for("document.readyState === 'complete' && typeof uPlot === 'function'",
               "the page and its scripts loaded")
    b.wait_for("document.getElementById('stream').textContent === 'live'",
               "the page's event stream opened")
    # The simulator's quotes arrive on their own.
    b.wait_for("document.querySelector('tr[data-channel=\"quotes.AAPL\"] td.n')"
               " && Number(document.querySelector('tr[data-channel=\"quotes.AAPL\"] td.n')"
               ".textContent) > 0", "a quote from ringcast-feed on the board")

    # A quote nobody else publishes, sent now that the page is loaded and listening.
    row = "document.querySelector('tr[data-channel=\"quotes.TEST\"]')"
    rc.check_eq(b.eval("!!" + row), False, "no quotes.TEST row before it is published")
    quote = {"sym": "TEST", "bid": 123.4, "ask": 123.49, "last": 123.45, "size": 700,
             "n": 1, "ts": int(time.time() * 1000)}
    receivers = r.publish("quotes.TEST", json.dumps(quote))
    rc.check(receivers >= 1, "the page's SSE stream is a subscriber", ">= 1", receivers)
    cells = b.wait_for(
        "(() => { const r = %s; if (!r) return null;"
        " return ['sym','bid','ask','last','size','n'].map("
        " c => r.querySelector('td.' + c).textContent); })()" % row,
        "the quote published after the page loaded is on the board")
    rc.check_eq(cells, ["TEST", "123.40", "123.49", "123.45", "700", "1"],
                "the new row's cells")

    # A payload that is not JSON is shown raw, as text (the <b> stays literal).
    raw = "market note: <b>halted</b> & resumed"
    r.publish("quotes.NOTE", raw)
    got = b.wait_for("(() => { const r = document.querySelector("
                     "'tr[data-channel=\"quotes.NOTE\"] td.raw');"
                     " return r && [r.textContent, r.querySelectorAll('*').length]; })()",
                     "the raw payload's row")
    rc.check_eq(got, [raw, 0], "raw payload shown as text, no element made from it")

    # The charts: three uPlot instances, and numbers parsed from /metrics.
    b.wait_for("document.querySelectorAll('.chart .uplot canvas').length === 3",
               "three charts drawn")
    server = b.wait_for("(document.getElementById('server').textContent.match("
                        "/^version \\S+, (uring|epoll) backend/) || [''])[0]",
                        "the header shows what /metrics says")
    rc.check("backend" in server, "server line parsed from /metrics", got=server)
    # Two scrapes give the first rates; wait for a third so the lines have length.
    b.wait_for("/updated/.test(document.getElementById('scrape').textContent)",
               "a /metrics scrape succeeded")
    time.sleep(5.0)  # three more scrapes at 2 s, for the screenshot's charts only
    rc.check_eq(b.errors(), [], "no JavaScript error or console error on the page")

    png = b.screenshot(os.path.join(build_dir(), "artifacts", "dashboard.png"))
    rc.check(png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10000,
             "a PNG screenshot was saved", got=len(png))
    print("screenshot: %s (%d bytes)" % (os.path.join(build_dir(), "artifacts",
                                                       "dashboard.png"), len(png)))


if __name__ == "__main__":
    rc.run_tests([test_assets_served, test_board_shows_quotes_published_after_load,
                  test_browser_websocket_and_event_stream_resume])
