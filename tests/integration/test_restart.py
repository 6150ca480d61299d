"""Restart on the same port: 30 immediate restarts, none may fail.

A supervisor (systemd's Restart=, a deploy script) stops the server and
starts it again on the same port at once. Each round starts the server on
one fixed port, connects a subscriber and an idle client (so the exit has
connections to tear down, and on io_uring a multishot accept and receives
in flight), stops it with SIGTERM (and every third round with SHUTDOWN
from a client instead), waits for the process to exit and starts the next
one immediately. The listening socket must be gone when the process is:
on io_uring a pending accept used to keep it listening until the ring's
asynchronous teardown, after the exit.

SPDX-License-Identifier: BSD-3-Clause
"""
import signal
import time

import rchelper
from rchelper import check, check_eq

ROUNDS = 30


def one_round(port, i):
    """Returns None on success, or why this round failed."""
    try:
        srv = rchelper.Server(port=port, flags=["--shutdown-timeout", "1"])
    except rchelper.Failure as e:
        return "start %d: %s" % (i, str(e).splitlines()[0] + " " + str(e)[-300:])
    try:
        sub = srv.conn(timeout=3)
        if sub.cmd("SUBSCRIBE", "r") != [b"subscribe", b"r", 1]:
            return "round %d: SUBSCRIBE failed" % i
        idle = srv.conn(timeout=3)
        if idle.cmd("PING") != "PONG":
            return "round %d: PING failed" % i
        if i % 3 == 2 and not rchelper.is_redis():
            idle.send_cmd("SHUTDOWN")
            code = srv.proc.wait(10)
        else:
            code = srv.stop(signal.SIGTERM, timeout=10)
        sub.close()
        idle.close()
        if code != 0:
            return "round %d: exit code %r" % (i, code)
        return None
    finally:
        srv.close()


def test_thirty_restarts():
    port = rchelper.free_port()
    failures = []
    for i in range(ROUNDS):
        why = one_round(port, i)
        if why:
            failures.append(why)
    check_eq(len(failures), 0, "failed restarts on port %d out of %d" % (port, ROUNDS))


def test_port_free_after_exit():
    """The port can be bound by anyone (with SO_REUSEADDR) right after exit."""
    import socket
    port = rchelper.free_port()
    bad = 0
    for _ in range(10):
        srv = rchelper.Server(port=port)
        try:
            srv.conn().cmd("SUBSCRIBE", "x")
            check_eq(srv.stop(signal.SIGTERM, timeout=10), 0, "exit code")
        finally:
            srv.close()
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((rchelper.HOST, port))
            s.listen(1)
        except OSError:
            bad += 1
        finally:
            s.close()
        time.sleep(0.01)
    check(bad == 0, "the port is free to bind right after the server exits", 0, bad)


if __name__ == "__main__":
    rchelper.run_tests([test_thirty_restarts, test_port_free_after_exit])
