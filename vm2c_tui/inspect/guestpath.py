"""Reading files inside a mounted guest without ever leaving it.

A guest's `/etc/os-release` may be a symlink to `/etc/shadow`: resolved on
the host, that would show the host's file. Here every symlink is resolved
against the guest root, `..` stops at the root, loops are bounded and
reads are capped.
"""

from __future__ import annotations

import os
import stat

MAX_LINKS = 40
MAX_READ = 256 * 1024


class GuestPathError(Exception):
    pass


def walk(path: str, is_link, readlink, *, follow_last: bool = True) -> list[str]:
    """Components of guest PATH with every symlink resolved against the guest root.

    IS_LINK(parts) says whether /parts is a symlink (None when it does not exist);
    READLINK(parts) returns its target. Shared by mounted guests and debugfs."""
    parts: list[str] = []
    todo = [p for p in path.split("/") if p][::-1]
    links = 0
    while todo:
        comp = todo.pop()
        if comp == ".":
            continue
        if comp == "..":
            if parts:
                parts.pop()
            continue
        link = is_link([*parts, comp])
        if link is None:
            parts.append(comp)
            if todo:
                raise GuestPathError(f"/{'/'.join(parts)}: no such directory")
            break
        if link and (todo or follow_last):
            links += 1
            if links > MAX_LINKS:
                raise GuestPathError(f"{path}: too many levels of symbolic links")
            target = readlink([*parts, comp])
            if target.startswith("/"):
                parts = []
            todo.extend([p for p in target.split("/") if p][::-1])
            continue
        parts.append(comp)
    return parts


def guest_target(root, path: str) -> str:
    """Guest PATH with its symlinks resolved inside the guest ROOT (a GuestRoot, or a reader's
    root with the same _is_link/_readlink); "" when it does not resolve to something there."""
    try:
        found = "/" + "/".join(walk(path, root._is_link, root._readlink))
    except (GuestPathError, OSError):
        return ""
    return found if root.exists(found) else ""


def link_text(root, path: str) -> str:
    """What the symlink at guest PATH says, unresolved ("" when it is not a symlink)."""
    parts = [p for p in path.split("/") if p]
    try:
        return root._readlink(parts) if root._is_link(parts) else ""
    except OSError:
        return ""


class GuestRoot:
    """A guest filesystem mounted on the host at ROOT."""

    def __init__(self, root: str):
        self.root = os.path.realpath(root)

    def _is_link(self, parts: list[str]) -> bool | None:
        try:
            return stat.S_ISLNK(os.lstat(os.path.join(self.root, *parts)).st_mode)
        except FileNotFoundError:
            return None

    def _readlink(self, parts: list[str]) -> str:
        return os.readlink(os.path.join(self.root, *parts))

    def resolve(self, path: str, *, follow_last: bool = True) -> str:
        """The host path of guest PATH, with symlinks resolved inside the guest."""
        try:
            parts = walk(path, self._is_link, self._readlink, follow_last=follow_last)
        except NotADirectoryError as exc:
            raise GuestPathError(str(exc)) from None
        except OSError as exc:  # ENAMETOOLONG, EACCES ...: a guest path that cannot be followed
            raise GuestPathError(f"{path[:200]!r}: {exc.strerror}") from None
        return os.path.join(self.root, *parts)

    def read(self, path: str, limit: int = MAX_READ) -> bytes | None:
        """At most LIMIT bytes of a regular file; None when absent or not a file."""
        try:
            host = self.resolve(path)
            fd = os.open(host, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY)
        except (GuestPathError, OSError):
            return None
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return None
            return os.read(fd, limit)
        finally:
            os.close(fd)

    def exists(self, path: str) -> bool:
        try:
            return os.path.lexists(self.resolve(path))
        except GuestPathError:
            return False

    def is_executable(self, path: str) -> bool:
        try:
            st = os.stat(self.resolve(path), follow_symlinks=False)
        except (GuestPathError, OSError):
            return False
        return stat.S_ISREG(st.st_mode) and bool(st.st_mode & 0o111)

    def listdir(self, path: str = "/", limit: int = 200) -> list[str]:
        try:
            with os.scandir(self.resolve(path)) as it:
                names = []
                for e in it:
                    names.append(e.name + ("/" if e.is_dir(follow_symlinks=False) else ""))
                    if len(names) >= limit:
                        break
            return sorted(names)
        except (GuestPathError, OSError):
            return []
