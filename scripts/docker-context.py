#!/usr/bin/env python3
"""Copies the Docker build context that .dockerignore leaves into a folder.

Matching follows Docker's rules: patterns are paths relative to the context root,
`*` and `?` do not cross `/`, `**` does, a pattern that matches a directory excludes
everything under it, `!` re-includes, and the last matching pattern wins.
Usage: docker-context.py DEST (run from the repository root; files are git's).
"""
import os
import re
import shutil
import subprocess
import sys


def compile_pattern(p):
    p = p.strip("/")
    out = ""
    i = 0
    while i < len(p):
        if p.startswith("**", i):
            out += ".*"
            i += 2
        elif p[i] == "*":
            out += "[^/]*"
            i += 1
        elif p[i] == "?":
            out += "[^/]"
            i += 1
        else:
            out += re.escape(p[i])
            i += 1
    return re.compile(out + "$")


def rules(path):
    out = []
    for line in open(path):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        keep = line.startswith("!")
        out.append((keep, compile_pattern(line.lstrip("!"))))
    return out


def excluded(path, patterns):
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    verdict = False
    for keep, rx in patterns:
        if any(rx.match(p) for p in prefixes):
            verdict = not keep
    return verdict


def main():
    dest = sys.argv[1]
    patterns = rules(".dockerignore")
    files = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        check=True, capture_output=True, text=True,
    ).stdout.split("\n")
    kept = 0
    for f in filter(None, files):
        if not os.path.exists(f) or excluded(f, patterns):
            continue
        os.makedirs(os.path.join(dest, os.path.dirname(f)), exist_ok=True)
        shutil.copy2(f, os.path.join(dest, f))
        kept += 1
    print(f"docker context: {kept} of {len([f for f in files if f])} files")


main()
