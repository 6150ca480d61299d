"""test_cli -- ringcastd's command line, config file, start-up errors and signals.

Checks --help/--version, that bad flags, bad values, unreadable or invalid
config files and a busy port end the process with exit code 1 and a clear
message, that a config file's settings take effect (CONFIG GET shows them,
command-line flags override the file) and that SIGTERM and SIGINT stop the
server with exit code 0 promptly, also with clients connected.

SPDX-License-Identifier: BSD-3-Clause
"""

import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rchelper as rc  # noqa: E402


def server_bin():
    return rc.redis_server_path() if rc.is_redis() else rc.ringcastd_path()


def run_once(args, timeout=5.0):
    """Runs the server binary with args; returns (rc, stdout, stderr). A server
    that keeps running past timeout is killed and reported as a failure."""
    p = subprocess.Popen([server_bin()] + args, stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate(timeout=5)
        raise rc.Failure("%r still running after %.0fs (expected it to exit)\nstdout: %r\n"
                         "stderr: %r" % (args, timeout, out[-2000:], err[-2000:]))
    return p.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")


def diag_text(out, err):
    """Where the error message must appear: stderr for ringcastd (its logs go
    there); redis-server prints some of these on stdout."""
    return (out + err) if rc.is_redis() else err


def expect_exit1(args, what, must_mention=()):
    code, out, err = run_once(args + ["--port", str(rc.free_port()), "--bind", rc.HOST])
    rc.check(code == 1, "%s: expected exit code 1, got %r\nstdout: %r\nstderr: %r"
             % (what, code, out[-1000:], err[-1000:]))
    text = diag_text(out, err)
    rc.check(text.strip() != "", "%s: expected a message on stderr, got none (stdout %r)"
             % (what, out[-500:]))
    for word in must_mention:
        rc.check(word.lower() in text.lower(), "%s: expected the message to mention %r, got %r"
                 % (what, word, text[-1000:]))


def test_help():
    if rc.is_redis():
        raise rc.Skip("redis-server --help exits 1; ringcast-only")
    code, out, err = run_once(["--help"])
    rc.check_eq(code, 0, "--help exit code")
    text = out + err
    rc.check("usage" in text.lower(), "--help should print usage, got %r" % text[:500])
    for flag in ("--port", "--io"):
        rc.check(flag in text, "--help should mention %s, got %r" % (flag, text[:2000]))


def test_version():
    code, out, err = run_once(["--version"])
    rc.check_eq(code, 0, "--version exit code")
    if rc.is_redis():
        rc.check(out.startswith("Redis server v="), "redis --version: %r" % out)
        return
    first = out.splitlines()[0] if out else ""
    rc.check(re.fullmatch(r"ringcastd \S+", first) is not None,
             "--version should print 'ringcastd <version>' on stdout", "ringcastd <version>", out)


def test_unknown_flag():
    expect_exit1(["--no-such-flag", "1"], "unknown flag", ["no-such-flag"])


def test_bad_values():
    expect_exit1(["--maxclients", "abc"], "--maxclients abc", ["maxclients"])
    code, out, err = run_once(["--port", "70000", "--bind", rc.HOST])
    rc.check(code == 1, "--port 70000: expected exit 1, got %r (%r %r)" % (code, out, err))
    rc.check(diag_text(out, err).strip() != "", "--port 70000: no message")
    if not rc.is_redis():
        expect_exit1(["--io", "bogus"], "--io bogus", ["io"])
        expect_exit1(["--client-output-buffer-limit", "pubsub 32xb 8mb 60"],
                     "bad client-output-buffer-limit", ["client-output-buffer-limit"])
        # a missing value is also an error
        code, out, err = run_once(["--port", str(rc.free_port()), "--bind", rc.HOST,
                                   "--maxclients"])
        rc.check(code == 1, "--maxclients without value: expected exit 1, got %r (%r)"
                 % (code, err[-500:]))


def test_unreadable_config():
    d = tempfile.mkdtemp(prefix="rc-cli-")
    path = os.path.join(d, "missing.conf")
    try:
        expect_exit1([path], "missing config file", [path])
    finally:
        os.rmdir(d)


def test_invalid_config_line():
    with tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False) as f:
        f.write("# comment\nno-such-directive 1\n")
        path = f.name
    try:
        expect_exit1([path], "config file with an unknown directive", ["line 2"])
    finally:
        os.unlink(path)


def test_busy_port():
    blocker = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        blocker.bind((rc.HOST, 0))
        blocker.listen(1)
        port = blocker.getsockname()[1]
        code, out, err = run_once(["--port", str(port), "--bind", rc.HOST]
                                  + ([] if rc.is_redis() else ["--io", rc.io_kind()]))
        rc.check(code == 1, "busy port %d: expected exit 1, got %r\nstderr: %r"
                 % (port, code, err[-1000:]))
        text = diag_text(out, err)
        rc.check(str(port) in text or "in use" in text.lower(),
                 "busy port: message should name the port or say 'in use', got %r"
                 % text[-1000:])
    finally:
        blocker.close()


def test_ready_log():
    with rc.Server() as s:
        deadline = time.monotonic() + 5
        while "Ready to accept connections" not in s.log() and time.monotonic() < deadline:
            time.sleep(0.05)
        rc.check("Ready to accept connections" in s.log(),
                 "log should contain 'Ready to accept connections', got %r" % s.log()[-2000:])


def test_config_file_settings():
    port = rc.free_port()
    text = ("# ringcast test config\n"
            "port %d\n"
            "bind 127.0.0.1\n"
            "maxclients 77\n"
            "timeout 0\n"
            "loglevel verbose\n"
            "client-output-buffer-limit pubsub 1mb 512kb 30\n"
            "requirepass \"s3cret pass\"\n" % port)
    with tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False) as f:
        f.write(text)
        path = f.name
    try:
        # The port comes from the file only; maxclients from the file is
        # overridden by the flag that follows it.
        with rc.Server(config_file=path, port=port, pass_port=False,
                       flags=["--maxclients", "88"]) as s:
            with s.conn() as c:
                r = c.cmd("PING")
                rc.check(isinstance(r, rc.Error) and r.startswith("NOAUTH"),
                         "requirepass from the file: PING before AUTH", "NOAUTH ...", r)
                rc.check_eq(c.cmd("AUTH", "s3cret pass"), "OK", "AUTH with the file's password")
                rc.check_eq(c.cmd("CONFIG", "GET", "port"), [b"port", str(port).encode()],
                            "CONFIG GET port (port from the config file)")
                rc.check_eq(c.cmd("CONFIG", "GET", "maxclients"), [b"maxclients", b"88"],
                            "CONFIG GET maxclients (flag overrides the file)")
                rc.check_eq(c.cmd("CONFIG", "GET", "loglevel"), [b"loglevel", b"verbose"],
                            "CONFIG GET loglevel")
                r = c.cmd("CONFIG", "GET", "client-output-buffer-limit")
                rc.check(isinstance(r, list) and len(r) == 2 and b"pubsub 1048576 524288 30"
                         in r[1], "CONFIG GET client-output-buffer-limit",
                         "[..., b'... pubsub 1048576 524288 30']", r)
                # glob patterns in CONFIG GET
                r = c.cmd("CONFIG", "GET", "maxclient?")
                rc.check_eq(r, [b"maxclients", b"88"], "CONFIG GET maxclient?")
    finally:
        os.unlink(path)


def stop_with(sig):
    with rc.Server() as s:
        a = s.conn()
        b = s.conn()
        try:
            rc.check_eq(a.cmd("SUBSCRIBE", "x"), [b"subscribe", b"x", 1], "SUBSCRIBE x")
            rc.check_eq(b.cmd("PUBLISH", "x", "y"), 1, "PUBLISH x y")
            t0 = time.monotonic()
            code = s.stop(sig, timeout=6.0)
            took = time.monotonic() - t0
            rc.check(code is not None, "%s: server did not exit within 6 s" % sig.name)
            rc.check(code == 0, "%s: expected exit code 0, got %r\n--- log ---\n%s"
                     % (sig.name, code, s.log()[-2000:]))
            rc.check(took < 4.0, "%s: exit took %.2fs (expected < 4 s)" % (sig.name, took))
            rc.check(a.expect_closed(2.0), "%s: subscriber connection should be closed"
                     % sig.name)
        finally:
            a.close()
            b.close()


def test_sigterm():
    stop_with(signal.SIGTERM)


def test_sigint():
    stop_with(signal.SIGINT)


if __name__ == "__main__":
    rc.run_tests([test_help, test_version, test_unknown_flag, test_bad_values,
                  test_unreadable_config, test_invalid_config_line, test_busy_port,
                  test_ready_log, test_config_file_settings, test_sigterm, test_sigint])
