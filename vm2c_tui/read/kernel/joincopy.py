"""An LV in pieces (grown with lvextend) for the kernel route, which has no device-mapper here
to join them: the pieces copied in order into a sparse temporary file, which a loop device
then reads. Only the source's data is copied (SEEK_DATA/SEEK_HOLE, copy_file_range), so the
copy costs what the LV holds, not its size; the room is checked first. The source is only
read. The user-space engine reads such an LV in place, and `--engine auto` prefers it.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from vm2c_tui.errors import Vm2cError
from vm2c_tui.host.copyrange import copy_range
from vm2c_tui.host.pagecache import data_runs
from vm2c_tui.host.session import Session


def _data(fd: int, off: int, n: int) -> list[tuple[int, int]]:
    """(offset, length) of the data in [off, off+n); all of it where holes cannot be asked for."""
    try:
        return [(a, b - a) for a, b in data_runs(fd, off, off + n)]
    except OSError:  # a filesystem (FUSE) that cannot say: copy it all
        return [(off, n)]


def _copy(src: int, dst: int, n: int, at: int, to: int) -> None:
    if copy_range(src, dst, n, at, to) < n:
        raise Vm2cError("the disk image ended inside an LV's piece (truncated image?)")


def joined_copy(session: Session, pieces: list[tuple[str, int, int]], fs_id: str) -> Path:
    """PIECES ((raw view, offset, length) each, on one disk or several), joined, in a 0700
    temporary directory the session removes."""
    fds = {path: os.open(path, os.O_RDONLY) for path in {p for p, _, _ in pieces}}
    try:
        runs = [_data(fds[path], off, n) for path, off, n in pieces]
        need = sum(ln for piece in runs for _, ln in piece)
        work = session.tempdir("join")
        free = shutil.disk_usage(work).free
        if need + (64 << 20) > free:
            raise Vm2cError(f"{fs_id} is in {len(pieces)} pieces: the kernel route joins them into a copy of "
                            f"{need >> 20} MiB, and {work.parent} has {free >> 20} MiB free; set TMPDIR to a "
                            f"roomier place, or use --engine userspace, which reads the pieces in place")
        dest = work / "lv.raw"
        dst = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            pos = 0
            for (path, off, n), piece in zip(pieces, runs):
                for at, ln in piece:
                    _copy(fds[path], dst, ln, at, pos + at - off)
                pos += n
            os.ftruncate(dst, pos)
        finally:
            os.close(dst)
    finally:
        for fd in fds.values():
            os.close(fd)
    return dest


def volume_file(session: Session, views, fs_id: str, offset: int, extents: list[tuple[int, int]],
                note=None) -> tuple[str, int]:
    """(file, offset) a loop device or debugfs reads a filesystem from: its disk's raw view
    (attach.Views), or for an LV in pieces a joined copy at offset 0 (diskimage.volume_disk's twin)."""
    if not extents:
        return views.locate(offset)
    if note:
        note(f"joining the {len(extents)} pieces of {fs_id} into a temporary copy")
    return str(joined_copy(session, views.pieces(extents), fs_id)), 0


class JoinedCopies:
    """A conversion's joined copies, each made once: the inspection looks inside an LV in
    pieces through the very copy that the mount reads later (a copy costs what the LV holds).
    They live as long as SESSION."""

    def __init__(self, session: Session):
        self.session = session
        self._copies: dict[tuple[str, tuple[tuple[int, int], ...]], Path] = {}

    def file(self, views, fs_id: str, offset: int, extents: list[tuple[int, int]],
             note=None) -> tuple[str, int]:
        """volume_file(), the copy kept for the next caller that asks for the same LV."""
        if not extents:
            return views.locate(offset)
        key = (fs_id, tuple(extents))
        if key not in self._copies:
            self._copies[key] = Path(volume_file(self.session, views, fs_id, offset, extents, note)[0])
        return str(self._copies[key]), 0

    def keep_only(self, fs_ids: set[str]) -> None:
        """Remove the copies of LVs outside FS_IDS (not in the plan): their room is TMPDIR's again."""
        for key in [k for k in self._copies if k[0] not in fs_ids]:
            self._copies.pop(key).unlink(missing_ok=True)
