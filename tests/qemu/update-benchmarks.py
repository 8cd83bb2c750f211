#!/usr/bin/env python3
"""Replaces one `## TITLE` section of BENCHMARKS.md with the text on stdin (appends it when the
section is missing); every other section is kept as it is.

usage: update-benchmarks.py BENCHMARKS.md "Binary size" < section-body.md
"""
import sys

path, title = sys.argv[1], sys.argv[2]
body = sys.stdin.read().strip("\n") + "\n"
try:
    lines = open(path).read().splitlines(keepends=True)
except FileNotFoundError:
    lines = ["# Benchmarks\n"]
head = f"## {title}"
start = next((i for i, l in enumerate(lines) if l.rstrip() == head), None)
new = [head + "\n", "\n", body]
if start is None:
    if lines and lines[-1].strip():
        lines.append("\n")
    lines += new
else:
    end = next((j for j in range(start + 1, len(lines)) if lines[j].startswith("## ")), len(lines))
    tail = lines[end:]
    lines = lines[:start] + new + (["\n"] if tail else []) + tail
open(path, "w").write("".join(lines))
