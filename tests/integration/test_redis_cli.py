"""test_redis_cli -- ringcastd driven by the real redis-cli (RESP2 and RESP3).

redis-cli is a client nobody here wrote, so its view of our replies is the
acceptance test: PING/ECHO, PUBLISH counts, background `redis-cli subscribe`
and `psubscribe` processes whose whole output is compared exactly, the
PUBSUB introspection subcommands, INFO sections (plus ringcastd's own
`fanout` section), CONFIG GET and the CLIENT subcommands' field shapes.

SPDX-License-Identifier: BSD-3-Clause
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rchelper as rc  # noqa: E402

CLI = shutil.which("redis-cli")
SERVER = None


def cli(*args, resp3=False, timeout=5.0, stdin=None):
    """Runs redis-cli against SERVER; returns stdout (bytes)."""
    argv = [CLI, "-h", rc.HOST, "-p", str(SERVER.port)]
    if resp3:
        argv.append("-3")
    argv += list(args)
    try:
        p = subprocess.run(argv, input=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=timeout, stdin=None if stdin is not None else
                           subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise rc.Failure("redis-cli %r timed out after %.0fs" % (args, timeout))
    return p.stdout


def expect_cli(args, expected, resp3=False):
    got = cli(*args, resp3=resp3)
    rc.check_eq(got, expected, "redis-cli%s %s" % (" -3" if resp3 else "", " ".join(args)))


class BgCli:
    """A background redis-cli process (e.g. `subscribe ch`) writing to a file."""

    def __init__(self, *args, resp3=False):
        self.out = tempfile.NamedTemporaryFile(prefix="rc-cli-", delete=False)
        argv = [CLI, "-h", rc.HOST, "-p", str(SERVER.port)] + (["-3"] if resp3 else [])
        self.args = args
        self.proc = subprocess.Popen(argv + list(args), stdin=subprocess.DEVNULL,
                                     stdout=self.out, stderr=subprocess.STDOUT)

    def output(self):
        with open(self.out.name, "rb") as f:
            return f.read()

    def wait_output(self, expected, timeout=5.0):
        deadline = time.monotonic() + timeout
        got = self.output()
        while time.monotonic() < deadline and len(got) < len(expected):
            time.sleep(0.02)
            got = self.output()
        time.sleep(0.05)  # anything extra that follows
        return self.output()

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            pass
        self.out.close()
        try:
            os.unlink(self.out.name)
        except OSError:
            pass


def wait_numsub(channel, n, timeout=5.0):
    deadline = time.monotonic() + timeout
    got = None
    while time.monotonic() < deadline:
        got = cli("PUBSUB", "NUMSUB", channel)
        if got == b"%s\n%d\n" % (channel.encode(), n):
            return
        time.sleep(0.02)
    raise rc.Failure("PUBSUB NUMSUB %s never reached %d (last %r)" % (channel, n, got))


def wait_numpat(n, timeout=5.0):
    deadline = time.monotonic() + timeout
    got = None
    while time.monotonic() < deadline:
        got = cli("PUBSUB", "NUMPAT")
        if got == b"%d\n" % n:
            return
        time.sleep(0.02)
    raise rc.Failure("PUBSUB NUMPAT never reached %d (last %r)" % (n, got))


def test_ping_echo():
    for r3 in (False, True):
        expect_cli(["PING"], b"PONG\n", r3)
        expect_cli(["PING", "hello world"], b"hello world\n", r3)
        expect_cli(["ECHO", "hi there"], b"hi there\n", r3)
        expect_cli(["ECHO", ""], b"\n", r3)
        expect_cli(["PUBLISH", "nobody", "x"], b"0\n", r3)
    got = cli("ECHO")
    rc.check(b"wrong number of arguments for 'echo' command" in got,
             "redis-cli ECHO (no argument)", b"ERR wrong number of arguments ...", got)
    # redis-cli can also read commands from stdin, one per line
    got = cli(stdin=b"PING\nECHO abc\nPUBLISH q w\n")
    rc.check_eq(got, b"PONG\nabc\n0\n", "redis-cli commands from stdin")


def test_subscribe_processes():
    subs = []
    try:
        s1 = BgCli("SUBSCRIBE", "news", "sport")
        subs.append(s1)
        s2 = BgCli("PSUBSCRIBE", "n*", resp3=True)
        subs.append(s2)
        s3 = BgCli("SUBSCRIBE", "news", resp3=True)
        subs.append(s3)
        wait_numsub("news", 2)
        wait_numsub("sport", 1)
        wait_numpat(1)
        expect_cli(["PUBLISH", "news", "hello"], b"3\n")
        expect_cli(["PUBLISH", "sport", "goal 1-0"], b"1\n", resp3=True)
        expect_cli(["PUBLISH", "nothing", "x y"], b"1\n")
        expect_cli(["PUBLISH", "other", "z"], b"0\n")
        expect_cli(["PUBLISH", "news", ""], b"3\n")
        exp1 = (b"subscribe\nnews\n1\nsubscribe\nsport\n2\n"
                b"message\nnews\nhello\nmessage\nsport\ngoal 1-0\nmessage\nnews\n\n")
        exp2 = (b"psubscribe\nn*\n1\npmessage\nn*\nnews\nhello\n"
                b"pmessage\nn*\nnothing\nx y\npmessage\nn*\nnews\n\n")
        exp3 = b"subscribe\nnews\n1\nmessage\nnews\nhello\nmessage\nnews\n\n"
        for bg, exp in ((s1, exp1), (s2, exp2), (s3, exp3)):
            got = bg.wait_output(exp)
            rc.check_eq(got, exp, "output of background redis-cli %s" % " ".join(bg.args))
    finally:
        for bg in subs:
            bg.close()


def test_pubsub_introspection():
    subs = []
    try:
        subs.append(BgCli("SUBSCRIBE", "alpha", "beta"))
        subs.append(BgCli("SUBSCRIBE", "alpha"))
        subs.append(BgCli("PSUBSCRIBE", "a*", "b?ta", "zz"))
        subs.append(BgCli("SSUBSCRIBE", "shardy"))
        wait_numsub("alpha", 2)
        wait_numsub("beta", 1)
        wait_numpat(3)
        got = sorted(cli("PUBSUB", "CHANNELS").split())
        rc.check_eq(got, [b"alpha", b"beta"], "PUBSUB CHANNELS")
        got = sorted(cli("PUBSUB", "CHANNELS", "a*").split())
        rc.check_eq(got, [b"alpha"], "PUBSUB CHANNELS a*")
        expect_cli(["PUBSUB", "CHANNELS", "nomatch*"], b"\n")  # empty array
        expect_cli(["PUBSUB", "NUMSUB", "alpha", "beta", "gamma"],
                   b"alpha\n2\nbeta\n1\ngamma\n0\n")
        expect_cli(["PUBSUB", "NUMSUB", "alpha", "beta", "gamma"],
                   b"alpha\n2\nbeta\n1\ngamma\n0\n", resp3=True)
        expect_cli(["PUBSUB", "NUMSUB"], b"\n")  # empty array
        expect_cli(["PUBSUB", "NUMPAT"], b"3\n")
        # wait for the SSUBSCRIBE to land
        deadline = time.monotonic() + 5
        while cli("PUBSUB", "SHARDNUMSUB", "shardy") != b"shardy\n1\n" and \
                time.monotonic() < deadline:
            time.sleep(0.02)
        expect_cli(["PUBSUB", "SHARDCHANNELS"], b"shardy\n")
        expect_cli(["PUBSUB", "SHARDCHANNELS", "x*"], b"\n")  # empty array
        expect_cli(["PUBSUB", "SHARDNUMSUB", "shardy", "alpha"], b"shardy\n1\nalpha\n0\n")
        # shard channels and classic channels are separate name spaces
        expect_cli(["PUBLISH", "shardy", "m"], b"0\n")
        expect_cli(["SPUBLISH", "shardy", "m"], b"1\n")
        expect_cli(["SPUBLISH", "alpha", "m"], b"0\n")
        # "alpha" matches the pattern a* as well: 2 channel subscribers + 1 pattern
        expect_cli(["PUBLISH", "alpha", "m"], b"3\n")
    finally:
        for bg in subs:
            bg.close()
    # after the clients are gone the tables are empty again
    deadline = time.monotonic() + 5
    while cli("PUBSUB", "NUMPAT") != b"0\n" and time.monotonic() < deadline:
        time.sleep(0.02)
    expect_cli(["PUBSUB", "NUMPAT"], b"0\n")
    expect_cli(["PUBSUB", "CHANNELS"], b"\n")  # empty array
    expect_cli(["PUBSUB", "SHARDCHANNELS"], b"\n")  # empty array


def int_field(sec, name, where):
    rc.check(name in sec, "INFO %s should have field %s; has %s" % (where, name, sorted(sec)))
    v = sec[name]
    rc.check(re.fullmatch(r"\d+", v) is not None, "INFO %s %s should be an integer, got %r"
             % (where, name, v))
    return int(v)


def cli_info(text):
    """INFO as printed by redis-cli (raw bulk: CRLF lines) -> sections."""
    return rc.info_sections(text.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))


def test_info():
    text = cli("INFO")
    rc.check(text.endswith(b"\n"), "INFO output should end with a newline: %r" % text[-50:])
    secs = cli_info(text)
    for name in ("server", "clients", "stats"):
        rc.check(name in secs, "INFO should have a '# %s' section; sections: %s"
                 % (name.capitalize(), sorted(secs)))
    rc.check_eq(int_field(secs["server"], "tcp_port", "server"), SERVER.port, "INFO tcp_port")
    rc.check_eq(int_field(secs["server"], "process_id", "server"), SERVER.proc.pid,
                "INFO process_id")
    rc.check(int_field(secs["clients"], "connected_clients", "clients") >= 1,
             "INFO connected_clients >= 1")
    int_field(secs["stats"], "total_connections_received", "stats")
    int_field(secs["stats"], "total_commands_processed", "stats")
    # a single section
    only = cli_info(cli("INFO", "clients"))
    rc.check_eq(sorted(only), ["clients"], "INFO clients should hold only that section")
    if rc.is_redis():
        return
    before = cli_info(cli("INFO", "fanout"))
    rc.check("fanout" in before, "INFO fanout: no '# Fanout' section: %r" % before)
    fan = before["fanout"]
    for f in ("messages_published", "deliveries", "bytes_out", "obuf_disconnects"):
        int_field(fan, f, "fanout")
    rc.check("syscalls_per_delivery" in fan, "INFO fanout should have syscalls_per_delivery")
    spd = fan["syscalls_per_delivery"]
    rc.check(re.fullmatch(r"\d+(\.\d+)?", spd) is not None,
             "syscalls_per_delivery should be a decimal number, got %r" % spd)
    rc.check("fanout" in secs, "INFO (default) should include the fanout section; sections %s"
             % sorted(secs))
    # Counters move: 3 publishes reaching 2 subscribers each.
    bg = [BgCli("SUBSCRIBE", "ctr"), BgCli("SUBSCRIBE", "ctr")]
    try:
        wait_numsub("ctr", 2)
        for i in range(3):
            expect_cli(["PUBLISH", "ctr", "payload%d" % i], b"2\n")
        for b in bg:
            b.wait_output(b"subscribe\nctr\n1\n" + b"".join(b"message\nctr\npayload%d\n" % i
                                                           for i in range(3)))
        after = cli_info(cli("INFO", "fanout"))["fanout"]
        d_pub = int(after["messages_published"]) - int(fan["messages_published"])
        d_del = int(after["deliveries"]) - int(fan["deliveries"])
        d_out = int(after["bytes_out"]) - int(fan["bytes_out"])
        rc.check_eq(d_pub, 3, "INFO fanout messages_published delta after 3 PUBLISH")
        rc.check_eq(d_del, 6, "INFO fanout deliveries delta after 3 PUBLISH x 2 subscribers")
        rc.check(d_out >= 6 * len(b"*3\r\n$7\r\nmessage\r\n$3\r\nctr\r\n$8\r\npayload0\r\n"),
                 "INFO fanout bytes_out should grow by at least the 6 messages, grew %d" % d_out)
        rc.check(float(after["syscalls_per_delivery"]) > 0,
                 "syscalls_per_delivery should be > 0 after deliveries: %r" % after)
    finally:
        for b in bg:
            b.close()


def test_config_get():
    expect_cli(["CONFIG", "GET", "port"], b"port\n%d\n" % SERVER.port)
    expect_cli(["CONFIG", "GET", "nonexistent-setting"], b"\n")  # empty array
    got = cli("CONFIG", "GET", "port", resp3=True)
    rc.check_eq(got, b"port %d\n" % SERVER.port, "redis-cli -3 CONFIG GET port (a map)")


CLIENT_FIELDS = ["id", "addr", "laddr", "fd", "name", "age", "idle", "flags", "db", "sub",
                 "psub", "ssub", "cmd", "resp"]


def client_fields(line):
    fields = {}
    order = []
    for tok in line.strip().split(" "):
        rc.check("=" in tok, "CLIENT INFO/LIST token without '=': %r in %r" % (tok, line))
        k, v = tok.split("=", 1)
        fields[k] = v
        order.append(k)
    missing = [f for f in CLIENT_FIELDS if f not in fields]
    rc.check(not missing, "CLIENT line lacks fields %s: %r" % (missing, line))
    pos = [order.index(f) for f in CLIENT_FIELDS]
    rc.check(pos == sorted(pos), "CLIENT fields out of Redis's order %s: %r"
             % (CLIENT_FIELDS, line))
    for f in ("id", "fd", "age", "idle", "db", "sub", "psub", "ssub", "resp"):
        rc.check(re.fullmatch(r"-?\d+", fields[f]) is not None,
                 "CLIENT field %s should be an integer: %r" % (f, line))
    rc.check(re.fullmatch(r"127\.0\.0\.1:\d+", fields["addr"]) is not None,
             "CLIENT addr shape: %r" % line)
    rc.check_eq(fields["laddr"], "127.0.0.1:%d" % SERVER.port, "CLIENT laddr")
    return fields


def test_client_commands():
    # one redis-cli run, several commands on the same connection via stdin
    out = cli(stdin=b"CLIENT SETNAME tester\nCLIENT GETNAME\nCLIENT ID\nCLIENT INFO\n")
    lines = out.split(b"\n")
    rc.check(len(lines) >= 4, "redis-cli CLIENT SETNAME/GETNAME/ID/INFO output: %r" % out)
    rc.check_eq(lines[0], b"OK", "CLIENT SETNAME tester")
    rc.check_eq(lines[1], b"tester", "CLIENT GETNAME")
    rc.check(re.fullmatch(rb"\d+", lines[2]) is not None, "CLIENT ID should be an integer: %r"
             % lines[2])
    f = client_fields(lines[3].decode())
    rc.check_eq(f["id"], lines[2].decode(), "CLIENT INFO id equals CLIENT ID")
    rc.check_eq(f["name"], "tester", "CLIENT INFO name")
    rc.check_eq(f["resp"], "2", "CLIENT INFO resp")
    rc.check_eq(f["cmd"], "client|info", "CLIENT INFO cmd")
    rc.check_eq(f["sub"] + f["psub"] + f["ssub"], "000", "CLIENT INFO sub/psub/ssub")
    out = cli("CLIENT", "GETNAME")
    rc.check_eq(out, b"\n", "CLIENT GETNAME without a name (nil)")
    out = cli("CLIENT", "SETNAME", "has space")
    rc.check(b"ERR Client names cannot contain spaces, newlines or special characters." in out,
             "CLIENT SETNAME with a space", b"ERR Client names cannot contain spaces, ...", out)
    out = cli("CLIENT", "INFO", resp3=True)
    f = client_fields(out.decode().strip())
    rc.check_eq(f["resp"], "3", "CLIENT INFO resp with -3")
    # a subscriber as seen by CLIENT LIST from another connection
    bg = BgCli("SUBSCRIBE", "l1", "l2")
    bg2 = BgCli("PSUBSCRIBE", "p*")
    try:
        wait_numsub("l2", 1)
        wait_numpat(1)
        out = cli("CLIENT", "LIST").decode()
        lines = [ln for ln in out.split("\n") if ln.strip()]
        rc.check(len(lines) >= 3, "CLIENT LIST should show >= 3 clients: %r" % out)
        recs = [client_fields(ln) for ln in lines]
        ids = [int(r["id"]) for r in recs]
        rc.check(ids == sorted(ids) and len(set(ids)) == len(ids),
                 "CLIENT LIST ids should be unique and ascending: %s" % ids)
        subs = [r for r in recs if r["sub"] == "2"]
        rc.check(len(subs) == 1 and subs[0]["psub"] == "0" and "P" in subs[0]["flags"],
                 "CLIENT LIST: one client with sub=2 psub=0 flags containing P: %r" % out)
        rc.check_eq(subs[0]["cmd"], "subscribe", "CLIENT LIST cmd of the subscriber")
        ps = [r for r in recs if r["psub"] == "1"]
        rc.check(len(ps) == 1 and ps[0]["sub"] == "0", "CLIENT LIST: one client with psub=1: %r"
                 % out)
        me = [r for r in recs if r["cmd"] == "client|list"]
        rc.check_eq(len(me), 1, "CLIENT LIST: exactly one client running client|list")
        out = cli("CLIENT", "LIST", "ID", subs[0]["id"]).decode().strip()
        rc.check(not out.startswith("ERR"), "CLIENT LIST ID %s" % subs[0]["id"],
                 "one client line", out)
        rc.check_eq(client_fields(out)["id"], subs[0]["id"], "CLIENT LIST ID <id>")
    finally:
        bg.close()
        bg2.close()


def main():
    global SERVER
    if not CLI:
        print("redis-cli is not installed")
        sys.exit(rc.SKIP)
    with rc.Server() as s:
        SERVER = s
        rc.run_tests([test_ping_echo, test_subscribe_processes, test_pubsub_introspection,
                      test_info, test_config_get, test_client_commands])


if __name__ == "__main__":
    main()
