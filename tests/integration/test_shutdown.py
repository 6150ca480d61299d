"""SIGTERM under load: exit 0 in time, nothing acknowledged is lost.

1. Ten subscribers read while a publisher pipelines numbered messages; the
   server gets SIGTERM in the middle. It must exit 0 within
   shutdown-timeout (plus a margin), and every subscriber must have
   received, in order and without gaps, at least every message whose
   PUBLISH the publisher saw acknowledged -- queued data to healthy clients
   is flushed, not dropped. Requests arriving after SIGTERM are not run, so
   a publisher that keeps sending cannot stall the flush until the deadline.
2. The same with a stalled subscriber that never reads: the flush cannot
   finish, so the server gives up at shutdown-timeout and still exits 0.
3. The same drain when a client sends SHUTDOWN instead of the signal.
4. SHUTDOWN's arguments as Redis 7.0 parses them (syntax errors, ABORT with
   nothing to abort), the requesting client gets no reply but EOF, and
   `redis-cli shutdown` exits 0 with the server gone.

SPDX-License-Identifier: BSD-3-Clause
"""
import selectors
import signal
import socket
import time

import rchelper
from rchelper import HOST, check, check_eq, encode

SIZE = 100


def payload(seq):
    head = b"seq:%08d:" % seq
    return head + b"p" * (SIZE - len(head))


def frame(seq):
    p = payload(seq)
    return b"*3\r\n$7\r\nmessage\r\n$2\r\nsd\r\n$%d\r\n%s\r\n" % (len(p), p)


def subscriber(port, rcvbuf=None):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(5)
    s.connect((HOST, port))
    s.sendall(encode("SUBSCRIBE", "sd"))
    want = b"*3\r\n$9\r\nsubscribe\r\n$2\r\nsd\r\n:1\r\n"
    got = b""
    while len(got) < len(want):
        got += s.recv(len(want) - len(got))
    check_eq(got, want, "subscribe confirmation")
    return s


def count_prefix(data):
    """How many leading whole frames of data are frame(0), frame(1), ..."""
    fl = len(frame(0))
    n = 0
    while (n + 1) * fl <= len(data) and data[n * fl:(n + 1) * fl] == frame(n):
        n += 1
    return n


def run(stalled, shutdown_timeout, how="signal"):
    # Small kernel send buffers: backlogs stay in the server's queues, where
    # the shutdown has to flush them.
    flags = ["--shutdown-timeout", str(shutdown_timeout), "--so-sndbuf", "65536"]
    srv = rchelper.Server(flags=flags)
    try:
        subs = [subscriber(srv.port) for _ in range(10)]
        stuck = subscriber(srv.port, rcvbuf=4096) if stalled else None
        pub = srv.conn(timeout=10)
        # The SHUTDOWN client connects now, not at the signal: with several
        # workers a new connection is accepted and handed to its worker first,
        # and the publisher's worker would go on running requests meanwhile.
        admin = srv.conn() if how == "command" else None
        check(admin is None or admin.cmd("PING") == "PONG", "the SHUTDOWN client is connected")
        sel = selectors.DefaultSelector()
        got = {}
        for s in subs:
            s.setblocking(False)
            sel.register(s, selectors.EVENT_READ)
            got[s] = bytearray()
        eof = set()
        pub.sock.setblocking(False)
        acked = 0
        sent = 0
        replies = bytearray()
        pub_closed = False
        signalled_at = None
        exit_code = None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            # Publish a batch of 100 while the publisher connection lives.
            if not pub_closed and sent - acked < 2000:
                try:
                    pub.sock.sendall(b"".join(encode("PUBLISH", "sd", payload(sent + i))
                                              for i in range(100)))
                    sent += 100
                except (BlockingIOError, BrokenPipeError, ConnectionResetError):
                    pass
            try:
                d = pub.sock.recv(1 << 16)
                if d:
                    replies += d
                else:
                    pub_closed = True
            except BlockingIOError:
                pass
            except (ConnectionResetError, BrokenPipeError):
                pub_closed = True
            # Each reply is ":<n>\r\n"; count the complete ones.
            acked = replies.count(b"\r\n")
            # Subscribers pause reading from message 15000 until the signal,
            # so the server holds a backlog for each of them at SIGTERM.
            paused = signalled_at is None and acked >= 15000
            for key, _ in ([] if paused else sel.select(timeout=0.005)):
                s = key.fileobj
                try:
                    d = s.recv(1 << 18)
                except BlockingIOError:
                    continue
                except ConnectionResetError:
                    d = b""
                if d:
                    got[s] += d
                else:
                    sel.unregister(s)
                    eof.add(s)
            if signalled_at is None and acked >= 20000:
                if how == "signal":
                    srv.proc.send_signal(signal.SIGTERM)
                else:
                    admin.send_cmd("SHUTDOWN", "NOSAVE")
                signalled_at = time.monotonic()
                sent_at_signal = sent
            if signalled_at is not None and exit_code is None:
                exit_code = srv.proc.poll()
                if exit_code is not None:
                    exit_after = time.monotonic() - signalled_at
            if exit_code is not None and len(eof) == len(subs) and pub_closed:
                break
        check(signalled_at is not None, "enough messages were acknowledged before SIGTERM",
              ">= 20000", acked)
        if exit_code is None:
            try:
                exit_code = srv.proc.wait(shutdown_timeout + 5)
                exit_after = time.monotonic() - signalled_at
            except Exception:  # noqa: BLE001 -- reported as a failure below
                pass
        check_eq(exit_code, 0, "exit code after SIGTERM")
        print("    exited %.2f s after SIGTERM; %d published (%d when signalled), %d acknowledged"
              % (exit_after, sent, sent_at_signal, acked), flush=True)
        check(exit_after < shutdown_timeout + 1.5, "exited within shutdown-timeout",
              "< %.1f s" % (shutdown_timeout + 1.5), exit_after)
        if not stalled:
            # The flush completes; a publisher still sending must not keep it
            # busy until the deadline.
            check(exit_after < shutdown_timeout - 2, "exited once the queues drained, "
                  "well before the deadline", "< %d s" % (shutdown_timeout - 2), exit_after)
        if stalled:
            check(exit_after >= shutdown_timeout - 0.5,
                  "waited for the stalled client until the deadline",
                  ">= %.1f s" % (shutdown_timeout - 0.5), exit_after)
        # The server notices the signal at its next loop iteration, so requests
        # already in its read batch still run: allow one publisher window.
        check(acked <= sent_at_signal + 2000, "requests sent after SIGTERM are not executed "
              "(so the flush converges)", "<= %d acknowledged" % (sent_at_signal + 2000), acked)
        check_eq(len(eof), len(subs), "every subscriber saw the connection close")
        check(all(v == 11 if stalled else v == 10 for v in [int(x[1:]) for x in
                                                            bytes(replies).split(b"\r\n")[:-1]]),
              "every acknowledged PUBLISH counted every subscriber")
        for i, s in enumerate(subs):
            n = count_prefix(bytes(got[s]))
            fl = len(frame(0))
            check(n * fl == len(got[s]), "subscriber %d: only whole, in-order messages" % i,
                  "%d bytes" % (n * fl), len(got[s]))
            check(n >= acked, "subscriber %d received every acknowledged message" % i,
                  ">= %d" % acked, n)
        if not stalled:
            check("ready to exit" in srv.log(), "the shutdown is logged", got=srv.log()[-500:])
        for s in subs:
            s.close()
        if stuck:
            stuck.close()
        if admin:
            admin.close()
        pub.close()
    finally:
        srv.close()


def test_sigterm_flushes_healthy_subscribers():
    if rchelper.is_redis():
        raise rchelper.Skip("redis-server does not flush clients on SIGTERM")
    run(stalled=False, shutdown_timeout=8)


def test_sigterm_with_stalled_subscriber_meets_deadline():
    if rchelper.is_redis():
        raise rchelper.Skip("redis-server does not flush clients on SIGTERM")
    run(stalled=True, shutdown_timeout=2)


def test_shutdown_command_flushes_healthy_subscribers():
    if rchelper.is_redis():
        raise rchelper.Skip("redis-server does not flush clients on SHUTDOWN")
    run(stalled=False, shutdown_timeout=8, how="command")


def test_shutdown_arguments_and_redis_cli():
    import subprocess
    with rchelper.Server() as srv:
        c = srv.conn()
        for args, want in [(("SHUTDOWN", "BAD"), "ERR syntax error"),
                           (("SHUTDOWN", "NOSAVE", "SAVE"), "ERR syntax error"),
                           (("SHUTDOWN", "ABORT", "NOW"), "ERR syntax error"),
                           (("SHUTDOWN", "ABORT"), "ERR No shutdown in progress.")]:
            check_eq(c.cmd(*args), want, "reply to %s" % " ".join(args))
        check_eq(c.cmd("SUBSCRIBE", "x"), [b"subscribe", b"x", 1], "SUBSCRIBE")
        r = c.cmd("SHUTDOWN")
        check(isinstance(r, rchelper.Error) and "only (P|S)SUBSCRIBE" in r,
              "SHUTDOWN is refused in a RESP2 subscribed context", got=r)
        check(srv.alive(), "the server is still running")
        # The requesting client gets EOF, no reply; every SAVE flag is accepted.
        other = srv.conn()
        # (redis-server would write a dump file for SAVE; ringcastd ignores it)
        other.send_cmd("SHUTDOWN", "NOSAVE" if rchelper.is_redis() else "SAVE", "NOW", "FORCE")
        out, eof = other.read_raw(quiet=2.0, maxtime=5.0)
        check(eof and out == b"", "SHUTDOWN's client sees EOF and no reply", b"", (out, eof))
        check_eq(srv.proc.wait(10), 0, "exit code after SHUTDOWN SAVE NOW FORCE")
    with rchelper.Server(flags=["--requirepass", "pw"]) as srv:
        r = srv.conn().cmd("SHUTDOWN")
        check_eq(r, "NOAUTH Authentication required.", "SHUTDOWN before AUTH")
        cli = subprocess.run(["redis-cli", "-p", str(srv.port), "-a", "pw", "--no-auth-warning",
                              "shutdown"], capture_output=True, timeout=20)
        check_eq(cli.returncode, 0, "redis-cli shutdown exit code")
        check_eq(srv.proc.wait(10), 0, "server exit code after redis-cli shutdown")


if __name__ == "__main__":
    rchelper.run_tests([test_sigterm_flushes_healthy_subscribers,
                        test_sigterm_with_stalled_subscriber_meets_deadline,
                        test_shutdown_command_flushes_healthy_subscribers,
                        test_shutdown_arguments_and_redis_cli])
