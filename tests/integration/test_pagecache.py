"""Reading a cold disk image with direct I/O, a cached one through the page cache."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest
from conftest import CACHE, vm2c
from manifest import compare, tar_manifest, tree_manifest
from test_archive import FULL_MOUNTS, _ignore_mkfs_and_wh

from vm2c_tui.host.pagecache import direct_io_pays, resident_fraction

MIB = 1 << 20


@pytest.fixture
def disk_dir():
    """A directory on a block device's filesystem (the fixture cache), where /tmp may be tmpfs."""
    CACHE.mkdir(parents=True, exist_ok=True)
    d = Path(tempfile.mkdtemp(prefix="pagecache-", dir=CACHE))
    yield d
    shutil.rmtree(d)


def evict(path) -> None:
    """Drop PATH's pages from the page cache (this file only, nothing else on the machine)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def warm(path) -> None:
    with open(path, "rb") as f:
        while f.read(MIB):
            pass


def test_resident_fraction_counts_data_pages_only(disk_dir, tmp_path):
    img = disk_dir / "sparse.img"  # on tmpfs the pages are the file: they cannot be evicted
    with open(img, "wb") as f:
        f.truncate(64 * MIB)  # a hole, then 4 MiB of data in the middle, then a hole
        f.seek(16 * MIB)
        f.write(b"x" * 4 * MIB)
    warm(img)
    assert resident_fraction(str(img), 0, 64 * MIB) == 1.0  # the 60 MiB of holes are not counted
    evict(img)
    assert resident_fraction(str(img), 0, 64 * MIB) == 0.0
    with open(img, "rb") as f:  # read back half of the data
        f.seek(16 * MIB)
        f.read(2 * MIB)
    assert 0.4 <= resident_fraction(str(img), 0, 64 * MIB) <= 0.6
    assert resident_fraction(str(img), 16 * MIB, MIB) == 1.0
    assert resident_fraction(str(img), 40 * MIB, 8 * MIB) is None  # only a hole there
    assert resident_fraction(str(tmp_path), 0, MIB) is None
    assert resident_fraction(str(tmp_path / "missing"), 0, MIB) is None


def test_direct_io_only_for_a_cold_aligned_file_on_a_disk(disk_dir):
    img = disk_dir / "disk.img"
    img.write_bytes(b"\1" * 8 * MIB)
    evict(img)
    assert direct_io_pays(str(img), 1 * MIB, 4 * MIB)
    assert not direct_io_pays(str(img), 1 * MIB + 1, 4 * MIB)  # the kernel could not use it
    warm(img)
    assert not direct_io_pays(str(img), 1 * MIB, 4 * MIB)
    shm = "/dev/shm"
    if os.path.isdir(shm):  # tmpfs: no device behind it, its pages are the file
        other = os.path.join(shm, f"vm2c-test-{os.getpid()}")
        with open(other, "wb") as f:
            f.write(b"\1" * MIB)
        try:
            assert not direct_io_pays(other, 0, MIB)
        finally:
            os.unlink(other)


def test_cold_image_archives_the_same_through_direct_io(disks, disk_dir, tmp_path, no_leaks):
    src = disk_dir / "cold.raw"
    shutil.copyfile(disks.get("full"), src)  # a copy of our own: evicting it slows nothing else
    evict(src)
    plan = vm2c("archive", src, "-o", tmp_path / "x", "--dry-run", check=True).stdout
    assert "losetup -f --show -r --direct-io=on --sector-size 512 -o " in plan
    out = tmp_path / "out"
    proc = vm2c("--debug", "archive", src, "-o", out, "--preset", "none", "--no-sanitize", check=True)
    assert proc.stderr.count("--direct-io=on") >= 4  # root, /boot, /var, /home: each its own loop device
    trees = disks.trees("full")
    expected = tree_manifest({mp: trees / d for mp, d in FULL_MOUNTS.items()})
    assert compare(expected, tar_manifest(out / "img.tar"), ignore=_ignore_mkfs_and_wh) == []
    warm(src)  # a cached image is read through the cache, as before
    plan = vm2c("archive", src, "-o", tmp_path / "x", "--dry-run", check=True).stdout
    assert "--direct-io" not in plan
