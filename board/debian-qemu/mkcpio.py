#!/usr/bin/env python3
"""Writes a directory as a newc cpio archive (the kernel's initramfs format) without root.

Every entry is owned by root:root with mtime 0 (reproducible); files keep their permission
bits. Extra device nodes the kernel needs before devtmpfs is mounted (/dev/console, /dev/null)
are added from the command line: --node PATH:c:MAJOR:MINOR.

usage: mkcpio.py DIR OUT.cpio [--node /dev/console:c:5:1 ...]
"""
import os
import stat
import sys


def header(ino, mode, nlink, size, major, minor, name):
    namesize = len(name) + 1
    fields = [ino, mode, 0, 0, nlink, 0, size, 0, 0, major, minor, namesize, 0]
    h = b"070701" + b"".join(b"%08X" % f for f in fields)
    h += name.encode() + b"\0"
    return h + b"\0" * ((4 - len(h) % 4) % 4)


def pad(n):
    return b"\0" * ((4 - n % 4) % 4)


def main():
    src, out = sys.argv[1], sys.argv[2]
    nodes = []
    args = sys.argv[3:]
    while args:
        if args[0] == "--node" and len(args) > 1:
            path, kind, major, minor = args[1].split(":")
            nodes.append((path.lstrip("/"), kind, int(major), int(minor)))
            args = args[2:]
        else:
            sys.exit(__doc__)
    ino = 1
    with open(out, "wb") as f:
        entries = []
        for root, dirs, files in os.walk(src):
            dirs.sort()
            rel = os.path.relpath(root, src)
            if rel != ".":
                entries.append(rel)
            for name in sorted(files):
                entries.append(os.path.normpath(os.path.join(rel, name)))
            for name in dirs:
                p = os.path.join(root, name)
                if os.path.islink(p):  # os.walk does not descend into links; write them as links
                    entries.append(os.path.normpath(os.path.join(rel, name)))
        seen = set()
        for rel in entries:
            if rel in seen:
                continue
            seen.add(rel)
            p = os.path.join(src, rel)
            st = os.lstat(p)
            perm = stat.S_IMODE(st.st_mode)
            if stat.S_ISLNK(st.st_mode):
                data = os.readlink(p).encode()
                f.write(header(ino, stat.S_IFLNK | 0o777, 1, len(data), 0, 0, rel) + data + pad(len(data)))
            elif stat.S_ISDIR(st.st_mode):
                f.write(header(ino, stat.S_IFDIR | perm, 2, 0, 0, 0, rel))
            elif stat.S_ISREG(st.st_mode):
                with open(p, "rb") as g:
                    data = g.read()
                f.write(header(ino, stat.S_IFREG | perm, 1, len(data), 0, 0, rel) + data + pad(len(data)))
            else:
                sys.exit(f"mkcpio: {p}: unsupported file type")
            ino += 1
        for path, kind, major, minor in nodes:
            if kind != "c":
                sys.exit("mkcpio: only character devices (c) are supported")
            f.write(header(ino, stat.S_IFCHR | 0o600, 1, 0, major, minor, path))
            ino += 1
        f.write(header(0, 0, 1, 0, 0, 0, "TRAILER!!!"))
        # pad the archive to a multiple of 512 bytes, as cpio(1) does
        f.write(b"\0" * ((512 - f.tell() % 512) % 512))


if __name__ == "__main__":
    main()
