"""The assembled guest tree, walked in user space: the root filesystem with the
others entered at their mount points, and GNU tar's exclude rules applied the
same way (anchored rules on ./path, unanchored ones on any trailing part)."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterator
from dataclasses import dataclass, field

from ..presets import ALWAYS_EMPTY, Rule
from .fsbase import Meta


@dataclass
class Mounted:
    mountpoint: str  # "/" or "/boot" ...
    fs_id: str
    reader: object
    reached: bool = False


@dataclass
class Entry:
    name: bytes  # as tar names it: b"./etc/passwd", directories end in "/"
    path: bytes  # b"./etc/passwd"
    reader: object
    node: object
    meta: Meta


@dataclass
class Filters:
    anchored: list[str] = field(default_factory=list)
    unanchored: list[str] = field(default_factory=list)
    whiteouts: list[str] = field(default_factory=list)  # guest files named .wh.*, skipped and reported

    @classmethod
    def build(cls, rules: list[Rule], user: list[str]) -> Filters:
        anchored = [f"./{d}/*" for d in ALWAYS_EMPTY] + [r.pattern for r in rules]
        return cls(anchored, list(user))

    def excluded(self, path: bytes) -> bool:
        p = path.decode("utf-8", "surrogateescape")
        if any(fnmatch.fnmatchcase(p, pat) for pat in self.anchored):
            return True
        parts = p.split("/")
        tails = ["/".join(parts[i:]) for i in range(len(parts))]
        if parts[-1].startswith(".wh."):
            self.whiteouts.append(p[1:])
            return True
        return any(fnmatch.fnmatchcase(t, pat) for pat in self.unanchored for t in tails)


def walk(mounts: list[Mounted], filters: Filters) -> Iterator[Entry]:
    """Entries in depth-first order; a directory before its contents."""
    by_point = {m.mountpoint.encode("utf-8", "surrogateescape"): m for m in mounts}
    top = by_point[b"/"]
    top.reached = True
    root = top.reader.root()
    stack = [(b".", top.reader, root)]
    while stack:
        path, reader, node = stack.pop()
        meta = reader.meta(node)
        yield Entry(path + b"/" if meta.kind == "dir" else path, path, reader, node, meta)
        if meta.kind != "dir":
            continue
        kids = []
        for name, child in reader.children(node):
            cpath = path + b"/" + name
            if filters.excluded(cpath):
                continue
            r, c = reader, child
            m = by_point.get(cpath[1:])
            if m is not None and reader.meta(child).kind == "dir":
                m.reached = True
                r, c = m.reader, m.reader.root()
            kids.append((cpath, r, c))
        stack.extend(reversed(kids))
