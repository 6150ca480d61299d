"""Connection limits: maxclients, and running out of file descriptors.

1. maxclients: the client over the limit gets Redis's exact
   `-ERR max number of clients reached` and is closed; the slot frees up
   when a client leaves.
2. EMFILE: ringcastd started with RLIMIT_NOFILE=64 faces 100 connections.
   It must not spin on the listener (CPU time over 2 s of pressure stays
   low), must keep serving the clients it has, and must accept again once
   clients leave. Run on every backend: epoll pauses its listener, the
   io_uring backend's multishot accept backs off and re-arms.

SPDX-License-Identifier: BSD-3-Clause
"""
import resource
import socket
import time

import rchelper
from rchelper import HOST, check, check_eq, encode

MAXCLIENTS_ERR = b"-ERR max number of clients reached\r\n"


def test_maxclients():
    with rchelper.Server(flags=["--maxclients", "10"]) as srv:
        time.sleep(0.2)  # the readiness probe's connection is gone
        conns = [srv.conn() for _ in range(10)]
        for i, c in enumerate(conns):
            check_eq(c.cmd("PING"), "PONG", "client %d of 10 is served" % (i + 1))
        with socket.create_connection((HOST, srv.port), timeout=5) as s:
            s.sendall(encode("PING"))
            got = b""
            s.settimeout(3)
            try:
                while True:
                    d = s.recv(4096)
                    if not d:
                        break
                    got += d
            except ConnectionResetError:
                pass
            check_eq(got, MAXCLIENTS_ERR, "the 11th client's reply, then EOF")
        # A subscriber is a client like any other.
        check_eq(conns[0].cmd("SUBSCRIBE", "x"), [b"subscribe", b"x", 1], "SUBSCRIBE")
        conns.pop().close()

        def eleventh_served():
            try:
                with srv.conn(timeout=2) as c:
                    return c.cmd("PING") == "PONG"
            except (OSError, rchelper.Failure):
                return False
        check(rchelper.wait_until(eleventh_served, 5.0, step=0.1),
              "a client is served again after one left")
        check_eq(srv.conn().cmd("PUBLISH", "x", "m"), 1, "the subscriber survived")
        if not rchelper.is_redis():
            info = rchelper.info_sections(conns[1].cmd("INFO", "stats"))
            check(int(info["stats"]["rejected_connections"]) >= 1, "INFO rejected_connections",
                  ">= 1", info["stats"]["rejected_connections"])
        for c in conns:
            c.close()


def low_nofile():
    resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))


def test_emfile_no_spin_and_recovery():
    n = 100
    # maxclients well above the descriptor limit, so EMFILE is what stops us.
    flags = ["--maxclients", "1000"]
    with rchelper.Server(flags=flags, preexec=low_nofile) as srv:
        time.sleep(0.2)
        held = []
        for i in range(n):
            held.append(socket.create_connection((HOST, srv.port), timeout=5))
        # Let the server hit EMFILE, then measure its CPU time under pressure.
        time.sleep(0.5)
        check(srv.alive(), "the server survives EMFILE", got=srv.log()[-1500:])
        fds = srv.fds()
        check(fds <= 64, "the server holds at most RLIMIT_NOFILE descriptors", "<= 64", fds)
        cpu0 = srv.cpu_seconds()
        time.sleep(2.0)
        cpu = srv.cpu_seconds() - cpu0
        print("    %d descriptors open; CPU over 2 s of EMFILE pressure: %.3f s" % (fds, cpu),
              flush=True)
        check(cpu < 0.5, "no busy loop while out of descriptors", "< 0.5 s", cpu)
        if not rchelper.is_redis():
            check("Too many open files" in srv.log(), "EMFILE is logged", got=srv.log()[-800:])
        # The clients it accepted are served.
        served = 0
        for s in held[:20]:
            s.settimeout(2)
            try:
                s.sendall(encode("PING"))
                if s.recv(100) == b"+PONG\r\n":
                    served += 1
            except OSError:
                pass
        check(served >= 15, "clients accepted before EMFILE are served", ">= 15", served)
        # Free everything: the server accepts the backlog, then new clients.
        for s in held:
            s.close()
        held = []

        def fresh_served():
            try:
                with srv.conn(timeout=2) as c:
                    return c.cmd("PING") == "PONG"
            except (OSError, rchelper.Failure):
                return False
        check(rchelper.wait_until(fresh_served, 10.0, step=0.2),
              "served again once clients left")
        # And it can take many clients again (redis-server lowers its own
        # maxclients to RLIMIT_NOFILE - 32, so stay under that).
        again = []
        for i in range(25):
            c = srv.conn(timeout=3)
            check_eq(c.cmd("PING"), "PONG", "client %d after recovery" % i)
            again.append(c)
        for c in again:
            c.close()
        check(rchelper.wait_until(lambda: srv.fds() < 20, 5.0), "descriptors released",
              "< 20", srv.fds())


if __name__ == "__main__":
    rchelper.run_tests([test_maxclients, test_emfile_no_spin_and_recovery])
