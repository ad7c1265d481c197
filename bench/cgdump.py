#!/usr/bin/env python3
"""Totals of callgrind dump files, for bench/callgrind.sh.

    cgdump.py FILE...   ->  one line per file: IR SYSCOUNT CLOCK_GETTIME_CALLS

IR: instructions (the `summary:` line, else `totals:`). SYSCOUNT: system calls (`--collect-systime`;
0 without it). CLOCK_GETTIME_CALLS: calls to glibc's clock_gettime, from the `calls=` lines.
Valgrind gives its guest no vDSO, so every clock_gettime is a real system call under it and is
in SYSCOUNT, where a native run makes none (strace does not see them): SYSCOUNT minus these calls
is the figure to set beside a native count.
"""
import re
import sys

NAME = re.compile(r"^(c?fn)=\((\d+)\)(?: (.*))?$")


def totals(path):
    events, summary, names, callee, clock = [], None, {}, None, 0
    with open(path, errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            if line.startswith("events:"):
                events = line.split()[1:]
            elif line.startswith("summary:") or (line.startswith("totals:") and summary is None):
                # summary: what callgrind_annotate calls PROGRAM TOTALS. The totals: line (the sum of
                # the cost lines) can be larger: with --collect-systime it counted about 1.2 times
                # the system calls that the calls= lines and strace show, summary: matched them.
                summary = [int(x) for x in line.split()[1:]]
            elif line.startswith(("fn=", "cfn=")):
                m = NAME.match(line)
                if m:  # compressed names: "(id) name" the first time, "(id)" after
                    if m.group(3):
                        names[m.group(2)] = m.group(3)
                    if m.group(1) == "cfn":
                        callee = names.get(m.group(2), "")
                else:  # uncompressed (--compress-strings=no)
                    if line.startswith("cfn="):
                        callee = line[4:]
            elif line.startswith("calls=") and callee and callee.startswith("clock_gettime"):
                clock += int(line[6:].split()[0])
    summary = summary or [0] * len(events)
    value = dict(zip(events, summary))
    return value.get("Ir", 0), value.get("sysCount", 0), clock


if __name__ == "__main__":
    for path in sys.argv[1:]:
        print(*totals(path))
