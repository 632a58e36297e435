"""The assembled guest tree, walked in user space: the root filesystem with the
others entered at their mount points, and GNU tar's exclude rules applied the
same way (anchored rules on ./path, unanchored ones on any trailing part)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from vm2c_tui.plan.excludes import Filters
from vm2c_tui.read.userspace.fsbase import FsError, Meta


@dataclass
class Mounted:
    mountpoint: str  # "/" or "/boot" ...
    fs_id: str
    reader: object


@dataclass
class Entry:
    name: bytes  # as tar names it: b"./etc/passwd", directories end in "/"
    path: bytes  # b"./etc/passwd"
    reader: object
    node: object
    meta: Meta


MAX_PATH = 16 * 4096  # bytes: deeper than any real tree; a crafted one stops here


@dataclass
class UserspaceTree:
    disk: object
    mounts: list[Mounted]
    filters: Filters
    sanitize: bool
    sparse: bool = False  # GNU sparse members (archive --sparse; never for Docker)
    limit_rate: int = 0  # bytes/s at most (--limit-rate)

    def used_bytes(self) -> int:
        return sum(m.reader.used_bytes() for m in self.mounts)


def _check_name(path: bytes, name: bytes) -> None:
    """A name read from a disk image is data: one with a slash, a NUL, or '.'/'..' would let a
    crafted image put members outside the tree (../../etc/...) or shadow others."""
    if not name or b"/" in name or b"\0" in name or name in (b".", b".."):
        raise FsError(f"{path.decode('utf-8', 'replace')[1:] or '/'}: a directory entry named {name!r}: "
                      f"the filesystem is corrupt or crafted; refusing to archive it")


def walk(mounts: list[Mounted], filters: Filters) -> Iterator[Entry]:
    """Entries in depth-first order; a directory before its contents. Directory loops (a
    crafted image can link a directory into itself) and absurd depths are refused."""
    by_point = {m.mountpoint.encode("utf-8", "surrogateescape"): m for m in mounts}
    top = by_point[b"/"]
    root = top.reader.root()
    stack = [(b".", top.reader, root, None)]
    dirs_seen: dict[tuple, bytes] = {}
    while stack:
        path, reader, node, parents = stack.pop()
        meta = reader.meta(node)
        yield Entry(path + b"/" if meta.kind == "dir" else path, path, reader, node, meta)
        if meta.kind != "dir":
            continue
        key = (id(reader), meta.ino)
        chain = parents
        while chain is not None:
            if chain[0] == key:
                raise FsError(f"{path.decode('utf-8', 'replace')[1:]}: a directory loop (it is one of its own "
                              f"parents): the filesystem is corrupt or crafted")
            chain = chain[1]
        if key in dirs_seen:  # no filesystem links a directory twice; a crafted one would be walked twice
            raise FsError(f"{path.decode('utf-8', 'replace')[1:]}: the same directory as "
                          f"{dirs_seen[key].decode('utf-8', 'replace')[1:] or '/'} (reachable by two names): "
                          "the filesystem is corrupt or crafted; refusing to archive it")
        dirs_seen[key] = path
        if len(path) > MAX_PATH:
            raise FsError(f"{path[:200].decode('utf-8', 'replace')}...: deeper than {MAX_PATH} bytes")
        here = (key, parents)
        kids = []
        for name, child in reader.children(node):
            _check_name(path, name)
            cpath = path + b"/" + name
            if filters.excluded(cpath):
                continue
            r, c = reader, child
            m = by_point.get(cpath[1:])
            if m is not None and reader.meta(child).kind == "dir":
                r, c = m.reader, m.reader.root()
            kids.append((cpath, r, c, here))
        stack.extend(reversed(kids))
