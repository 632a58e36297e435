"""A filesystem read in user space, seen through the GuestRoot interface
(read, exists, is_executable, listdir), so read_facts works on it unchanged.
Symlinks resolve inside the guest with the same walk as mounted guests."""

from __future__ import annotations

from vm2c_tui.inspect.guestpath import MAX_READ, GuestPathError, walk


def _b(s: str) -> bytes:
    return s.encode("utf-8", "surrogateescape")


def node_at(readers: dict[str, object], parts: list[str]):
    """(reader, node) of guest /PARTS, entering the filesystems mounted on the way (READERS:
    mount point -> reader, "/" among them), following no symlinks; None when it is not there."""
    reader = readers["/"]
    node, cur = reader.root(), ""
    for part in parts:
        if reader.meta(node).kind != "dir":
            return None
        node = reader.lookup(node, _b(part))
        if node is None:
            return None
        cur += "/" + part
        inner = readers.get(cur)
        if inner is not None and reader.meta(node).kind == "dir":
            reader, node = inner, inner.root()
    return reader, node


class ReaderRoot:
    """READER's filesystem as the guest root, with MOUNTS (mount point -> reader) entered where
    the guest mounts them, so /srv or /home on their own filesystems are seen as in the VM."""

    def __init__(self, reader, mounts: dict[str, object] | None = None):
        self.readers = {**(mounts or {}), "/": reader}

    def _found(self, parts: list[str]):
        return node_at(self.readers, parts) or (None, None)

    def _is_link(self, parts: list[str]) -> bool | None:
        r, node = self._found(parts)
        return None if node is None else r.meta(node).kind == "symlink"

    def _readlink(self, parts: list[str]) -> str:
        r, node = self._found(parts)
        return r.meta(node).link.decode("utf-8", "surrogateescape")

    def _resolved(self, path: str):
        try:
            return self._found(walk(path, self._is_link, self._readlink))
        except (GuestPathError, NotADirectoryError):
            return None, None

    def read(self, path: str, limit: int = MAX_READ) -> bytes | None:
        r, node = self._resolved(path)
        if node is None or r.meta(node).kind != "file":
            return None
        out = bytearray()
        for chunk in r.chunks(node):
            out += chunk
            if len(out) >= limit:
                break
        return bytes(out[:limit])

    def exists(self, path: str) -> bool:
        return self._resolved(path)[1] is not None

    def is_executable(self, path: str) -> bool:
        r, node = self._resolved(path)
        if node is None:
            return False
        m = r.meta(node)
        return m.kind == "file" and bool(m.mode & 0o111)

    def listdir(self, path: str = "/", limit: int = 200) -> list[str]:
        r, node = self._resolved(path)
        if node is None or r.meta(node).kind != "dir":
            return []
        names = []
        for name, child in r.children(node):
            names.append(name.decode("utf-8", "replace") + ("/" if r.meta(child).kind == "dir" else ""))
            if len(names) >= limit:
                break
        return sorted(names)
