"""test_fallback -- `--io uring` falls back to epoll when io_uring is refused.

io_uring is often unavailable in production (Docker's default seccomp
profile, the kernel.io_uring_disabled sysctl, hardened fleets), so the
default backend must degrade to epoll with one log line and otherwise work
normally. Two ways of refusing it are tried:

  - RINGCAST_URING_FAIL=1, the server's own switch: the io_uring backend's
    init returns -EPERM;
  - a real seccomp filter, installed with prctl() through ctypes in a small
    Python shim that then execs ringcastd: io_uring_setup fails with EPERM
    exactly as under a container runtime's profile (x86_64 and aarch64;
    skipped elsewhere or when prctl is refused).

In both cases: the server starts, logs exactly one line about falling back
to epoll (and nothing else about io_uring), INFO server reports io_backend
epoll, and a subscriber receives what a publisher sends. The behaviour does
not depend on RINGCAST_IO, so the file runs once: with io != uring it exits
77.

SPDX-License-Identifier: BSD-3-Clause
"""

import os
import platform
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rchelper as rc  # noqa: E402

# Runs in the child before exec: no-new-privs, then a filter returning EPERM
# for io_uring_setup (425 on both x86_64 and aarch64) and allowing the rest.
SECCOMP_SHIM = r"""
import ctypes, os, platform, struct, sys
ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}[platform.machine()]
NR_IO_URING_SETUP = 425
PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 38, 22, 2
RET_ALLOW, RET_ERRNO, EPERM = 0x7FFF0000, 0x00050000, 1
LD_W_ABS, JEQ_K, RET_K = 0x20, 0x15, 0x06
def ins(code, jt, jf, k):
    return struct.pack("HBBI", code, jt, jf, k)
prog = b"".join([
    ins(LD_W_ABS, 0, 0, 4),                 # seccomp_data.arch
    ins(JEQ_K, 1, 0, ARCH),
    ins(RET_K, 0, 0, RET_ALLOW),            # another ABI: leave it alone
    ins(LD_W_ABS, 0, 0, 0),                 # seccomp_data.nr
    ins(JEQ_K, 0, 1, NR_IO_URING_SETUP),
    ins(RET_K, 0, 0, RET_ERRNO | EPERM),
    ins(RET_K, 0, 0, RET_ALLOW),
])
buf = ctypes.create_string_buffer(prog, len(prog))
class FProg(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]
fp = FProg(len(prog) // 8, ctypes.cast(buf, ctypes.c_void_p))
libc = ctypes.CDLL(None, use_errno=True)
libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p, ctypes.c_ulong,
                       ctypes.c_ulong]
if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, None, 0, 0) != 0:
    sys.exit(77)
if libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.addressof(fp), 0, 0) != 0:
    sys.exit(77)
os.execv(sys.argv[1], sys.argv[1:])
"""


class SeccompServer(rc.Server):
    """ringcastd started through the seccomp shim."""

    def argv(self, port):
        return [sys.executable, "-c", SECCOMP_SHIM] + super().argv(port)


def check_fell_back(srv, why_text):
    lines = srv.log().splitlines()
    fallback = [ln for ln in lines if "falling back" in ln.lower()]
    rc.check_eq(len(fallback), 1, "number of log lines about falling back")
    rc.check("epoll" in fallback[0], "the fallback line names epoll", got=fallback[0])
    rc.check(why_text in fallback[0], "the fallback line says why", why_text, fallback[0])
    other = [ln for ln in lines if "io_uring" in ln.lower() and ln not in fallback]
    rc.check_eq(other, [], "other log lines mentioning io_uring")

    ctl = srv.conn()
    info = rc.info_sections(ctl.cmd("INFO", "server"))
    rc.check_eq(info.get("server", {}).get("io_backend"), "epoll", "INFO server io_backend")
    fan = rc.info_sections(ctl.cmd("INFO", "fanout")).get("fanout", {})
    rc.check_eq(fan.get("io_backend"), "epoll", "INFO fanout io_backend")

    sub = srv.conn()
    rc.check_eq(sub.cmd("SUBSCRIBE", "fb"), [b"subscribe", b"fb", 1], "SUBSCRIBE fb")
    for i in range(50):
        rc.check_eq(ctl.cmd("PUBLISH", "fb", "m%d" % i), 1, "PUBLISH fb m%d" % i)
    for i in range(50):
        rc.check_eq(sub.read(), [b"message", b"fb", b"m%d" % i], "message %d" % i)
    fan2 = rc.info_sections(ctl.cmd("INFO", "fanout")).get("fanout", {})
    rc.check_eq(fan2.get("sys_io_uring_enter"), "0", "no io_uring_enter counted under epoll")
    sub.close()
    ctl.close()
    rc.check_eq(srv.stop(), 0, "exit code after SIGTERM")


def test_env_switch():
    env = dict(os.environ, RINGCAST_URING_FAIL="1")
    with rc.Server(io="uring", env=env) as srv:
        check_fell_back(srv, "Operation not permitted")


def test_seccomp_denies_io_uring_setup():
    if platform.machine() not in ("x86_64", "aarch64"):
        raise rc.Skip("seccomp filter written for x86_64/aarch64 only")
    env = dict(os.environ)
    env.pop("RINGCAST_URING_FAIL", None)
    srv = SeccompServer(io="uring", env=env, wait=False)
    try:
        ok, why = srv.wait_ready()
        if not ok and srv.proc.poll() == 77:
            raise rc.Skip("prctl(PR_SET_SECCOMP) refused here")
        rc.check(ok, "server under seccomp became ready", got=why + "\n" + srv.log()[-2000:])
        check_fell_back(srv, "Operation not permitted")
    finally:
        srv.close()


if __name__ == "__main__":
    if rc.is_redis():
        print("test_fallback: ringcast-only, skipped against redis")
        sys.exit(rc.SKIP)
    if rc.io_kind() != "uring":
        print("test_fallback: only meaningful with RINGCAST_IO=uring (have %s); skipped"
              % rc.io_kind())
        sys.exit(rc.SKIP)
    rc.run_tests([test_env_switch, test_seccomp_denies_io_uring_setup])
