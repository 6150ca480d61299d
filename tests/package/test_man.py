"""test_man -- the man pages say what the programs and docs/config.md say.

The pages are generated (man/*.md + scripts/mkman.py), pulling in --help and
docs/config.md; this checks the result, so a generator bug or a page source
that stops including something fails here:

  - every setting the server knows (CONFIG GET * on a real ringcastd) and
    every setting heading of docs/config.md is in ringcast.conf(5);
  - every flag of each program's --help is in that program's page;
  - groff formats every page without a warning (what lintian checks too).

SPDX-License-Identifier: BSD-3-Clause
"""

import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import rchelper as rc  # noqa: E402

SRC = os.environ.get("RINGCAST_SRC") or os.path.join(os.path.dirname(__file__), "..", "..")
PAGES = {"ringcastd": "ringcastd.8", "ringcast-feed": "ringcast-feed.1",
         "ringcast-bench": "ringcast-bench.1"}


def man_dir():
    d = os.environ.get("RINGCAST_MAN_DIR") or os.path.join(os.path.dirname(rc.ringcastd_path()),
                                                           "man")
    rc.check(os.path.isdir(d), "generated man pages in %s (build the ringcast-man target)" % d)
    return d


def page_text(name):
    """The page's text with roff escapes undone, as a reader would search it."""
    with open(os.path.join(man_dir(), name), encoding="ascii") as f:
        roff = f.read()
    return roff.replace(r"\-", "-").replace(r"\e", "\\").replace(r"\fB", "").replace(
        r"\fR", "").replace(r"\fI", "").replace(r"\&", "")


def doc_settings():
    names = []
    with open(os.path.join(SRC, "docs", "config.md"), encoding="utf-8") as f:
        for line in f:
            if line.startswith("#### "):
                names += re.findall(r"`([a-z0-9-]+)`", line)
    rc.check(len(names) >= 20, "docs/config.md lists its settings as #### `name`", ">= 20",
             names)
    return names


def test_conf_page_has_every_setting():
    page = page_text("ringcast.conf.5")
    missing = [n for n in doc_settings() if not re.search(r"^\.TP\n.*\b%s\b" % re.escape(n),
                                                          page, re.M)]
    rc.check_eq(missing, [], "docs/config.md settings without an entry in ringcast.conf(5)")
    with rc.Server(io="epoll") as srv, srv.conn() as c:
        reply = c.cmd("CONFIG", "GET", "*")
    live = [reply[i].decode() for i in range(0, len(reply), 2)]
    rc.check(len(live) >= 20, "CONFIG GET * lists the settings", ">= 20", live)
    missing = [n for n in live if not re.search(r"\b%s\b" % re.escape(n), page)]
    rc.check_eq(missing, [], "settings ringcastd knows but ringcast.conf(5) does not mention")


def test_pages_have_every_flag():
    bindir = os.path.dirname(rc.ringcastd_path())
    for prog, page in PAGES.items():
        exe = os.path.join(bindir, prog)
        if prog != "ringcastd" and not os.access(exe, os.X_OK):
            continue
        r = subprocess.run([exe, "--help"], capture_output=True, timeout=10)
        rc.check_eq(r.returncode, 0, "%s --help exit code" % prog)
        flags = sorted(set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", r.stdout.decode())))
        rc.check(len(flags) >= 3, "%s --help lists flags" % prog, ">= 3", flags)
        text = page_text(page)
        missing = [f for f in flags if not re.search(r"(?<![\w-])%s(?![\w-])" % f, text)]
        rc.check_eq(missing, [], "flags of `%s --help` missing from %s" % (prog, page))


def test_pages_format_cleanly():
    if not shutil.which("groff"):
        raise rc.Skip("groff is not installed")
    for page in sorted(os.listdir(man_dir())):
        r = subprocess.run(["groff", "-man", "-ww", "-z", "-Tutf8", os.path.join(man_dir(), page)],
                           capture_output=True, timeout=30)
        rc.check_eq((r.returncode, r.stderr.decode()), (0, ""), "groff warnings for %s" % page)
        with open(os.path.join(man_dir(), page), encoding="ascii") as f:
            head = f.readline()
        rc.check(head.startswith('.TH "%s" "%s"' % tuple(page.upper().rsplit(".", 1))),
                 "title line of %s" % page, None, head)


if __name__ == "__main__":
    rc.run_tests([test_conf_page_has_every_setting, test_pages_have_every_flag,
                  test_pages_format_cleanly])
