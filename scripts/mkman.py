#!/usr/bin/env python3
"""mkman.py -- turns the man page sources in man/*.md into roff.

A man source is the markdown subset our docs use, plus two directives that pull
text from where it already lives, so a man page cannot drift from it:

    @help PROGRAM@            PROGRAM's `--help` output, verbatim (PROGRAM is
                              run: pass its path with --exe PROGRAM=PATH)
    @include FILE#HEADING@    the section of FILE (relative to --root) under
                              HEADING, up to the next heading of the same level

The first line is the title: `% NAME SECTION`. `## X` becomes .SH, `### X` .SS,
and a deeper heading a tagged paragraph whose body is indented (the settings of
docs/config.md). Included headings are shifted so the included one becomes .SH.
Supported inline markup: `code` and **bold** (bold), *emphasis* (italic) and
[text](link) (the text). Tables become tagged paragraphs, one per row.

Usage: mkman.py SOURCE OUTPUT --root DIR --version V [--exe NAME=PATH ...]

SPDX-License-Identifier: BSD-3-Clause
"""

import argparse
import re
import subprocess
import sys

SPECIAL = {"\u00b5": r"\(mc", "\u00b2": r"\(S2", "\u00b3": r"\(S3", "\u2014": r"\(em",
           "\u2013": r"\(en", "\u2192": r"\(->", "\u00d7": r"\(mu", "\u2264": r"\(<=",
           "\u2265": r"\(>=", "\u2026": "...", "\u2019": "'", "\u201c": '"', "\u201d": '"'}


class Error(Exception):
    pass


def escape(text, code=False):
    """Roff-escapes plain text. In code, '-' is a real minus so copied flags work."""
    out = []
    for ch in text:
        if ch == "\\":
            out.append(r"\e")
        elif ch == "-" and code:
            out.append(r"\-")
        elif ch in SPECIAL:
            out.append(SPECIAL[ch])
        elif ord(ch) > 127:
            out.append(r"\[u%04X]" % ord(ch))
        else:
            out.append(ch)
    return "".join(out)


INLINE = re.compile(r"`([^`]+)`|\*\*(.+?)\*\*|\*([^*\s][^*]*?)\*|\[([^\]]+)\]\(([^)]+)\)")


def inline(text):
    """Markdown inline markup to roff font changes."""
    out, pos = [], 0
    for m in INLINE.finditer(text):
        out.append(escape(text[pos:m.start()]))
        if m.group(1) is not None:
            out.append(r"\fB" + escape(m.group(1), code=True) + r"\fR")
        elif m.group(2) is not None:
            out.append(r"\fB" + inline(m.group(2)) + r"\fR")
        elif m.group(3) is not None:
            out.append(r"\fI" + inline(m.group(3)) + r"\fR")
        else:
            out.append(inline(m.group(4)))
        pos = m.end()
    out.append(escape(text[pos:]))
    return "".join(out)


def line_safe(s):
    """A roff text line must not start with a control character."""
    return "\\&" + s if s.startswith((".", "'")) else s


def heading_level(line):
    m = re.match(r"(#{1,6}) (.*)", line)
    return (len(m.group(1)), m.group(2).strip()) if m else (0, None)


def include(root, spec):
    """The lines of a section of a markdown file, its heading first."""
    path, _, title = spec.partition("#")
    try:
        with open("%s/%s" % (root, path), encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError as e:
        raise Error("@include %s: %s" % (spec, e))
    start = level = None
    for i, line in enumerate(lines):
        lv, text = heading_level(line)
        if start is None and lv and text.strip("`") == title:
            start, level = i, lv
        elif start is not None and lv and lv <= level and not in_code(lines, i):
            return lines[start:i], level
    if start is None:
        raise Error("@include %s: no heading %r in %s" % (spec, title, path))
    return lines[start:], level


def in_code(lines, i):
    return sum(1 for line in lines[:i] if line.startswith("```")) % 2 == 1


def run_help(exes, name):
    if name not in exes:
        raise Error("@help %s: no --exe %s=PATH given" % (name, name))
    r = subprocess.run([exes[name], "--help"], capture_output=True, timeout=30)
    if r.returncode != 0 or not r.stdout:
        raise Error("@help %s: `%s --help` exited %d" % (name, exes[name], r.returncode))
    return r.stdout.decode().rstrip("\n").splitlines()


def expand(lines, root, exes, shift=0):
    """Resolves directives; yields ("md", line, level shift) or ("pre", line)."""
    for line in lines:
        m = re.fullmatch(r"@(help|include) ([^@]+)@", line.strip())
        if not m:
            yield ("md", line, shift)
        elif m.group(1) == "help":
            yield ("md", "```", 0)
            for h in run_help(exes, m.group(2).strip()):
                yield ("md", h, 0)
            yield ("md", "```", 0)
        else:
            sub, level = include(root, m.group(2).strip())
            yield from expand(sub, root, exes, 2 - level)


class Roff:
    def __init__(self):
        self.out = []
        self.para = []        # lines of the paragraph being collected
        self.indented = False  # inside a level-4 block (a setting): paragraphs indented
        self.first_in_tag = False
        self.in_list = False

    def emit(self, *lines):
        self.out.extend(lines)

    def flush(self):
        if not self.para:
            return
        text = " ".join(s.strip() for s in self.para)
        self.para = []
        if self.first_in_tag:
            self.first_in_tag = False
        else:
            self.emit(".IP" if self.indented else ".PP")
        self.emit(line_safe(inline(text)))

    def end_list(self):
        if self.in_list and self.indented:
            self.emit(".RE")
        self.in_list = False

    def heading(self, level, text):
        self.flush()
        self.end_list()
        self.first_in_tag = False
        if level <= 2:
            self.indented = False
            self.emit('.SH "%s"' % inline(text).upper())
        elif level == 3:
            self.indented = False
            self.emit('.SS "%s"' % inline(text))
        else:
            self.indented = True
            self.emit(".TP", line_safe(inline(text)))
            self.first_in_tag = True

    def code(self, lines):
        self.flush()
        self.end_list()
        self.first_in_tag = False
        self.emit(".IP" if self.indented else ".PP", ".RS 4" if not self.indented else ".RS",
                  ".EX")
        self.emit(*[line_safe(escape(s, code=True)) for s in lines])
        self.emit(".EE", ".RE")

    def bullet(self, text):
        self.flush()
        self.first_in_tag = False
        if not self.in_list and self.indented:
            self.emit(".RS")
        self.in_list = True
        self.emit(r".IP \(bu 2", line_safe(inline(text)))

    def table(self, rows):
        self.flush()
        self.end_list()
        self.first_in_tag = False
        cells = [[c.strip() for c in r.strip().strip("|").split("|")] for r in rows]
        body = [c for c in cells[1:] if not all(re.fullmatch(r":?-+:?", x) for x in c)]
        if self.indented:
            self.emit(".RS")
        for c in body:
            self.emit(".TP", line_safe(inline(c[0])), line_safe(inline(" \u2014 ".join(c[1:]))))
        if self.indented:
            self.emit(".RE")
        self.emit(".PP" if not self.indented else ".IP")


def convert(src_lines, root, exes, version):
    m = re.fullmatch(r"% (\S+) (\d)", src_lines[0].strip()) if src_lines else None
    if not m:
        raise Error("first line must be `% NAME SECTION`")
    name, section = m.groups()
    r = Roff()
    r.emit('.TH "%s" "%s" "" "ringcast %s" "ringcast"' % (name.upper(), section, version))
    items = list(expand(src_lines[1:], root, exes))
    i = 0
    while i < len(items):
        _, line, shift = items[i]
        i += 1
        if line.startswith("```"):
            block = []
            while i < len(items) and not items[i][1].startswith("```"):
                block.append(items[i][1])
                i += 1
            i += 1
            r.code(block)
            continue
        level, text = heading_level(line)
        if level:
            r.heading(max(2, level + shift), text)
        elif line.startswith("|"):
            rows = [line]
            while i < len(items) and items[i][1].startswith("|"):
                rows.append(items[i][1])
                i += 1
            r.table(rows)
        elif re.match(r"[-*] ", line):
            r.bullet(line[2:])
            # Continuation lines of the item (indented) belong to it.
            while i < len(items) and re.match(r"  \S", items[i][1]):
                r.out[-1] += " " + inline(items[i][1].strip())
                i += 1
        elif not line.strip():
            r.flush()
            if r.in_list:
                r.end_list()
                r.emit(".PP" if not r.indented else ".IP")
                r.first_in_tag = True
        else:
            r.para.append(line)
    r.flush()
    r.end_list()
    # Blank lines and doubled paragraph macros render as extra space in man; drop them.
    out = []
    for line in r.out:
        if line in (".PP", ".IP") and out and out[-1] in (".PP", ".IP", ".TP"):
            continue
        if line.startswith((".SH", ".SS", ".TP")) and out and out[-1] in (".PP", ".IP"):
            out.pop()
        out.append(line)
    return "\n".join(out) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("source")
    ap.add_argument("output")
    ap.add_argument("--root", required=True, help="source tree, for @include")
    ap.add_argument("--version", required=True)
    ap.add_argument("--exe", action="append", default=[], help="NAME=PATH, for @help")
    a = ap.parse_args()
    exes = dict(e.split("=", 1) for e in a.exe)
    try:
        with open(a.source, encoding="utf-8") as f:
            text = convert(f.read().splitlines(), a.root, exes, a.version)
    except Error as e:
        print("mkman.py: %s: %s" % (a.source, e), file=sys.stderr)
        return 1
    with open(a.output, "w", encoding="ascii") as f:
        f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
