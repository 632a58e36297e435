"""Progress events: where tar is comes from a walk in tar's order and the files tar
holds open (treescan.py), not from a line per file out of tar. The walk must list
exactly tar's entries in tar's order, or the count stalls and jumps."""

from __future__ import annotations

import os
import socket
import subprocess
import tarfile

from vm2c_tui.archive import gnutar as arc
from vm2c_tui.archive.treescan import TreeScan, _key
from vm2c_tui.convert.conversion import Conversion, Options
from vm2c_tui.plan.excludes import Filters
from vm2c_tui.plan.presets import CONTAINER


def _tar_order(spec: arc.TarSpec) -> list[bytes]:
    """Names as tar archives them, in its order (its --verbose listing)."""
    cmd = [c for c in arc.tar_command(spec, "/dev/null") if not c.startswith("--checkpoint")]
    out = subprocess.run([*cmd[:-1], "--verbose", "."], capture_output=True, check=True).stdout
    return [n.rstrip(b"/").removeprefix(b".").removeprefix(b"/") for n in out.split(b"\n") if n]


def test_walk_lists_tars_entries_in_tars_order(tmp_path):
    root = tmp_path / "root"
    big = root / "usr/share/man/man1"  # > 10,000 entries: find (gnulib fts) would sort these by inode
    big.mkdir(parents=True)
    for i in range(10_050):
        (big / f"page{i * 7919 % 10_050}.1.gz").touch()
    (root / "boot/grub").mkdir(parents=True)  # the container preset keeps /boot empty
    (root / "boot/grub/grub.cfg").touch()
    (root / "srv/skip me").mkdir(parents=True)  # a user exclude with a space
    (root / "srv/skip me/x").touch()
    (root / "srv/.wh.secret").touch()  # never archived, reported
    (root / "srv/.wh.dir").mkdir()
    (root / "srv/.wh.dir/inside").touch()
    os.symlink("/etc/passwd", root / "srv/link")
    os.mkfifo(root / "srv/fifo")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(root / "srv/sock"))  # tar skips sockets

    spec = arc.TarSpec(root, list(CONTAINER), ["skip me"])
    scan = TreeScan(root, Filters.build(spec.excludes, spec.user_excludes)).join()
    sock.close()
    expected = _tar_order(spec)
    assert scan.entries == len(expected) > 10_050
    assert bytes(scan.keys) == b"".join(_key(n) for n in expected)
    assert sorted(scan.whiteouts) == ["/srv/.wh.dir", "/srv/.wh.secret"]
    assert scan.index(b"usr/share/man/man1/page5.1.gz", 0) == expected.index(b"usr/share/man/man1/page5.1.gz")


def test_archive_reports_progress_through_tar(disks, tmp_path, monkeypatch, no_leaks):
    """A throttled tar of the demo disk (1 s per MiB): events at >= 4 a second whose
    counts only grow, name paths the tar holds, and end at tar's own entry count."""
    events = []
    with Conversion(disks.get("demo", "vdi"), Options(limit_rate=1 << 20)) as conv:
        res = conv.write_archive(tmp_path, events.append)
    with tarfile.open(res.tar) as tf:
        names = {"/" + m.name.removeprefix("./").rstrip("/") for m in tf}
    assert res.files == len(names) == events[-1].files_done == events[-1].files_total
    assert res.seconds > 3 and len(events) >= 4 * res.seconds
    for a, b in zip(events, events[1:]):
        assert b.files_done >= a.files_done and b.bytes_done >= a.bytes_done
    midway = [e for e in events[:-1] if 0 < e.files_done < res.files]
    assert len(midway) >= len(events) // 2
    assert all(e.current in names for e in midway if e.current)
    assert len({e.files_done for e in midway}) >= 3, "the count moves while tar runs"


