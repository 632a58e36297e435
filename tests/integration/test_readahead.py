"""The read-ahead beside tar: it must count what tar counts (or its lead drifts and it
stalls), stay within its lead, and stop at once, leaving no find behind."""

from __future__ import annotations

import os
import time

import psutil

from vm2c_tui.archive.readahead import ReadAhead
from vm2c_tui.plan.excludes import Filters
from vm2c_tui.plan.presets import CONTAINER

MIB = 1 << 20


def _file(path, size: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(os.urandom(size))


def _finds() -> list[psutil.Process]:
    me = psutil.Process()
    return [p for p in me.children(recursive=True) if p.name() == "find"]


def test_counts_what_tar_archives(tmp_path):
    root = tmp_path / "root"
    _file(root / "usr/bin/a", 3 * MIB)
    _file(root / "usr/bin/b", 1 * MIB)
    os.link(root / "usr/bin/b", root / "usr/bin/b-again")  # tar stores the data once
    _file(root / "boot/vmlinuz", 5 * MIB)  # left out by the container preset
    _file(root / "boot/grub/grub.cfg", 7 * MIB)
    _file(root / "srv/.wh.x", 2 * MIB)  # never archived (Docker whiteout)
    _file(root / "srv/skip me/y", 2 * MIB)  # user exclude, a directory with a space
    (root / "srv/empty").touch()
    with open(root / "srv/sparse", "wb") as f:  # holes would fill the cache with zeros
        f.truncate(64 * MIB)
    os.symlink("/etc/passwd", root / "srv/link")  # never followed
    os.mkfifo(root / "srv/fifo")  # never opened (it would block)

    filters = Filters.build(list(CONTAINER), ["skip me"])
    ra = ReadAhead(root, filters, lambda: 0, lead=1 << 40)
    ra.join(10)
    assert (ra.files, ra.advised) == (2, 4 * MIB)
    ra.stop()


def test_stays_within_its_lead_and_follows_tar(tmp_path):
    for i in range(12):
        _file(tmp_path / f"f{i:02}", 1 * MIB)
    pos = [0]
    ra = ReadAhead(tmp_path, Filters.build([], []), lambda: pos[0], lead=3 * MIB)
    time.sleep(0.5)
    assert ra.advised == 3 * MIB  # then it waits for tar
    pos[0] = 8 * MIB
    time.sleep(0.5)
    assert ra.advised == 11 * MIB
    start = time.monotonic()
    ra.stop()
    assert time.monotonic() - start < 2
    assert _finds() == []


def test_a_large_file_is_advised_in_steps(tmp_path):
    _file(tmp_path / "big", 40 * MIB)
    ra = ReadAhead(tmp_path, Filters.build([], []), lambda: 0, lead=10 * MIB)
    time.sleep(0.5)
    assert ra.advised == 16 * MIB and ra.files == 0  # two 8 MiB steps, then it waits
    ra.stop()
    assert _finds() == []
