"""Where tar is, without tar telling us file by file.

tar's `--verbose` index (a line per file) cost tar ~15 % of its time over a
warm cache (benchmarks/). Instead, a walk beside tar lists the entries tar will
archive, in tar's order (pre-order, readdir's order, as GNU tar's default
`--sort=none`), with tar's exclude rules applied; 50 times a second the file
or directory tar has open (/proc/PID/fd) is looked up in that list, and its
place there is the number of entries done. Nothing is asked of tar per file.
"""

from __future__ import annotations

import os
import stat
import struct
import threading
from pathlib import Path

from vm2c_tui.plan.excludes import Filters

_KEY = struct.Struct("<q")


def _key(rel: bytes) -> bytes:
    """8 bytes per entry (a 1M-file tree: 8 MB), searched with bytearray.find."""
    return _KEY.pack(hash(rel))


class TreeScan:
    """The entries tar will archive (count, order), and the guest files named .wh.*,
    which tar skips (Docker would read them as whiteouts), for the report.

    A readdir walk in this process, not find: find sorts a directory of more than
    10,000 entries by inode (gnulib fts), tar keeps readdir's order, and the
    cursor needs tar's."""

    def __init__(self, tree: Path, filters: Filters, one_file_system: bool = False):
        self.tree = os.fsencode(tree)
        self.filters = filters
        self.one_file_system = one_file_system
        self.entries = 0
        self.keys = bytearray()
        self.whiteouts: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._walk, name="vm2c-treescan", daemon=True)
        self._thread.start()

    def _walk(self) -> None:
        try:
            dev = os.lstat(self.tree).st_dev
            self._add(b"")
            stack = [self._listing(b"")]
            while stack and not self._stop.is_set():
                for rel, is_dir, sub_dev, is_socket in stack[-1]:
                    # excluded first: a socket named .wh.* is still reported; GNU tar skips sockets
                    if self.filters.excluded(b"./" + rel) or is_socket:
                        continue
                    self._add(rel)
                    if is_dir and (not self.one_file_system or sub_dev == dev):
                        stack.append(self._listing(rel))
                        break  # pre-order: the directory's contents before its next sibling
                else:
                    stack.pop()
        except OSError:
            pass  # the count is for the progress only; tar reports real problems
        finally:
            self.whiteouts = list(dict.fromkeys(self.filters.whiteouts))

    def _listing(self, rel: bytes):
        """(rel, is_dir, st_dev or 0, is_socket) per entry, in readdir order, as an iterator."""
        out = []
        with os.scandir(self.tree + b"/" + rel if rel else self.tree) as it:
            for e in it:
                sub = rel + b"/" + e.name if rel else e.name
                is_dir = e.is_dir(follow_symlinks=False)
                dev = e.stat(follow_symlinks=False).st_dev if is_dir and self.one_file_system else 0
                odd = not (is_dir or e.is_file(follow_symlinks=False) or e.is_symlink())
                sock = odd and stat.S_ISSOCK(e.stat(follow_symlinks=False).st_mode)
                out.append((sub, is_dir, dev, sock))
        return iter(out)

    def _add(self, rel: bytes) -> None:
        self.keys += _key(rel)
        self.entries += 1

    def index(self, rel: bytes, start: int) -> int | None:
        """REL's place in tar's order, searched from entry START on."""
        key = _key(rel)
        at = self.keys.find(key, start * 8)
        while at >= 0 and at % 8:  # a match straddling two entries
            at = self.keys.find(key, at + 1)
        return at // 8 if at >= 0 else None

    def join(self) -> TreeScan:
        self._thread.join()
        return self

    def stop(self) -> None:
        """Before the tree is unmounted: the walk must not keep it busy."""
        self._stop.set()
        self._thread.join(10)


class TarCursor:
    """The entry tar is at: the deepest file or directory under TREE it holds open,
    placed in SCAN's order. tar has no file open between files (for small files,
    most of the time), so it is sampled often; the directory it is in keeps the
    count moving through a directory of tiny files."""

    def __init__(self, pid: int, tree: Path, scan: TreeScan | None):
        t = os.fsencode(os.path.realpath(tree))  # as the kernel names tar's open files
        self.prefix = t if t.endswith(b"/") else t + b"/"
        self.fds = f"/proc/{pid}/fd"
        self.scan = scan
        self.done = 0
        self.current = ""
        self._behind: set[bytes] = set()  # directories passed (not found from done on, never will be)

    def poll(self) -> None:
        if self.scan is None:
            return
        for rel in self._open_files():
            if rel in self._behind:
                continue
            at = self.scan.index(rel, self.done)
            if at is None:
                if len(self._behind) < 4096:
                    self._behind.add(rel)
            elif at + 1 > self.done:
                self.done = at + 1
                self.current = "/" + rel.decode("utf-8", "replace")

    def _open_files(self) -> list[bytes]:
        found = []
        try:
            fds = os.listdir(self.fds)
        except OSError:  # tar has exited
            return found
        for fd in fds:
            link = f"{self.fds}/{fd}"
            try:
                target = os.fsencode(os.readlink(link))
                if target.startswith(self.prefix):
                    found.append(target[len(self.prefix):])
            except OSError:  # closed meanwhile
                continue
        return found

    def finish(self) -> None:
        """tar succeeded: every entry of the scan is done."""
        if self.scan is not None:
            self.done = self.scan.join().entries
        self.current = ""
