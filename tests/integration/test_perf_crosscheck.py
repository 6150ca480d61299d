"""The server's own syscall count agrees with the kernel's (perf), on every backend.

Runs scripts/syscall-crosscheck.py against the real ringcastd: 100
subscribers, 3,000 pipelined publishes, and compares INFO fanout `syscalls`
with `perf stat -e raw_syscalls:sys_enter -p PID` over the same window.
Skipped (77) where perf cannot attach.

SPDX-License-Identifier: BSD-3-Clause
"""
import os
import subprocess
import sys

here = os.path.dirname(os.path.abspath(__file__))
script = os.path.join(here, "..", "..", "scripts", "syscall-crosscheck.py")
if os.environ.get("RINGCAST_TARGET") == "redis":
    sys.exit(77)
r = subprocess.run([sys.executable, script, "--messages", "3000", "--tolerance", "0.05"],
                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=240)
print(r.stdout.decode(errors="replace"))
sys.exit(r.returncode)
