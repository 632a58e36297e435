"""A filesystem read in user space, seen through the GuestRoot interface
(read, exists, is_executable, listdir), so read_facts works on it unchanged.
Symlinks resolve inside the guest with the same walk as mounted guests."""

from __future__ import annotations

from vm2c_tui.inspect.guestpath import MAX_READ, GuestPathError, walk


def _b(s: str) -> bytes:
    return s.encode("utf-8", "surrogateescape")


class ReaderRoot:
    def __init__(self, reader):
        self.r = reader

    def _node(self, parts: list[str]):
        node = self.r.root()
        for p in parts:
            if self.r.meta(node).kind != "dir":
                return None
            node = self.r.lookup(node, _b(p))
            if node is None:
                return None
        return node

    def _is_link(self, parts: list[str]) -> bool | None:
        node = self._node(parts)
        return None if node is None else self.r.meta(node).kind == "symlink"

    def _readlink(self, parts: list[str]) -> str:
        return self.r.meta(self._node(parts)).link.decode("utf-8", "surrogateescape")

    def _resolved(self, path: str):
        try:
            return self._node(walk(path, self._is_link, self._readlink))
        except (GuestPathError, NotADirectoryError):
            return None

    def read(self, path: str, limit: int = MAX_READ) -> bytes | None:
        node = self._resolved(path)
        if node is None or self.r.meta(node).kind != "file":
            return None
        out = bytearray()
        for chunk in self.r.chunks(node):
            out += chunk
            if len(out) >= limit:
                break
        return bytes(out[:limit])

    def exists(self, path: str) -> bool:
        return self._resolved(path) is not None

    def is_executable(self, path: str) -> bool:
        node = self._resolved(path)
        if node is None:
            return False
        m = self.r.meta(node)
        return m.kind == "file" and bool(m.mode & 0o111)

    def listdir(self, path: str = "/", limit: int = 200) -> list[str]:
        node = self._resolved(path)
        if node is None or self.r.meta(node).kind != "dir":
            return []
        names = []
        for name, child in self.r.children(node):
            names.append(name.decode("utf-8", "replace") + ("/" if self.r.meta(child).kind == "dir" else ""))
            if len(names) >= limit:
                break
        return sorted(names)
