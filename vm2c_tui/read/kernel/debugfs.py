"""Reading inside an ext2/3/4 filesystem without mounting it (so without root).

debugfs (e2fsprogs) opens the raw view at the filesystem's byte offset,
read-only, and answers stat/cat/ls. Symlinks are resolved with the same
guest-rooted walk as for mounted guests: nothing here can reach the host.
"""

from __future__ import annotations

import re
import subprocess

from vm2c_tui.host.confine import IMAGE, Sandbox
from vm2c_tui.host.run import c_locale, which
from vm2c_tui.inspect.guestpath import MAX_READ, GuestPathError, walk

_TYPE = re.compile(rb"Type: (\w+)\s+Mode:\s+(\d+)")
_FASTLINK = re.compile(rb'Fast link dest: "(.*)"', re.S)


class DebugfsRoot:
    def __init__(self, raw: str, offset: int):
        # debugfs splits 'FILE?offset=N' at the first '?': inside its sandbox the image is
        # /image, so a raw view named vm?x.img cannot make it open vm (or anything else)
        self.box = Sandbox.for_file(raw, inside=IMAGE)
        self.spec = f"{IMAGE}?offset={offset}"
        self.exe = which("debugfs") or "debugfs"

    def _debugfs(self, request: str, limit: int = 1 << 20) -> bytes:
        # -c: catastrophic mode, skips bitmaps (faster, and read-only anyway)
        proc = subprocess.Popen(self.box.wrap([self.exe, "-c", "-R", request, self.spec]), stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, env=c_locale(["debugfs"], None))
        assert proc.stdout is not None
        data = proc.stdout.read(limit)
        proc.kill()
        proc.wait()
        return data

    @staticmethod
    def _quote(parts: list[str]) -> str:
        path = "/" + "/".join(parts)
        if any(c in path for c in '"\n\\') or not path.isprintable():
            raise GuestPathError(f"{path!r}: not representable in a debugfs request")
        return f'"{path}"'

    def _stat(self, parts: list[str]) -> tuple[str, int, bytes] | None:
        out = self._debugfs(f"stat {self._quote(parts)}", 64 * 1024)
        m = _TYPE.search(out)
        if not m:
            return None
        return m.group(1).decode(), int(m.group(2), 8), out

    def _is_link(self, parts: list[str]) -> bool | None:
        st = self._stat(parts)
        return None if st is None else st[0] == "symlink"

    def _readlink(self, parts: list[str]) -> str:
        st = self._stat(parts)
        m = _FASTLINK.search(st[2]) if st else None
        if m:
            return m.group(1).decode("utf-8", "replace")
        # a slow symlink keeps its target in a data block
        return self._debugfs(f"cat {self._quote(parts)}", 4096).decode("utf-8", "replace")

    def _resolve(self, path: str) -> list[str]:
        return walk(path, self._is_link, self._readlink)

    def read(self, path: str, limit: int = MAX_READ) -> bytes | None:
        try:
            parts = self._resolve(path)
            st = self._stat(parts)
            if st is None or st[0] != "regular":
                return None
            return self._debugfs(f"cat {self._quote(parts)}", limit)
        except GuestPathError:
            return None

    def exists(self, path: str) -> bool:
        try:
            return self._stat(self._resolve(path)) is not None
        except GuestPathError:
            return False

    def is_executable(self, path: str) -> bool:
        try:
            st = self._stat(self._resolve(path))
        except GuestPathError:
            return False
        return st is not None and st[0] == "regular" and bool(st[1] & 0o111)

    def listdir(self, path: str = "/", limit: int = 200) -> list[str]:
        try:
            out = self._debugfs(f"ls -p {self._quote(self._resolve(path))}", 1 << 20)
        except GuestPathError:
            return []
        names = []
        for line in out.splitlines():
            f = line.split(b"/")
            if len(f) < 7 or f[5] in (b".", b".."):
                continue
            mode = int(f[2] or b"0", 8)
            names.append(f[5].decode("utf-8", "replace") + ("/" if mode & 0o170000 == 0o040000 else ""))
            if len(names) >= limit:
                break
        return sorted(names)
