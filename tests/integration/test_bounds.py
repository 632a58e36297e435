"""Bounded work on crafted metadata (user-space engine): a filesystem is data. Each image is a
real ext4 made by mkfs.ext4 -d, then patched as an attacker would (debugfs set_inode_field, a
directory entry's inode number rewritten); vm2c must refuse it in one line, or archive it
once, never loop, balloon or write the same data many times."""

from __future__ import annotations

import struct
import subprocess
import tarfile
from pathlib import Path

import pytest
from conftest import vm2c


def _ext4(tmp_path: Path, build) -> Path:
    tree = tmp_path / "tree"
    (tree / "etc").mkdir(parents=True)
    (tree / "etc/os-release").write_text('ID=b\nPRETTY_NAME="Bounds"\n')
    build(tree)
    img = tmp_path / "fs.img"
    subprocess.run(["mkfs.ext4", "-q", "-F", "-b", "4096", "-O", "^metadata_csum,^dir_index", "-d", tree, img, "32M"], check=True)
    return img


def _debugfs(img: Path, request: str, write: bool = False) -> str:
    return subprocess.run(["debugfs", *(["-w"] if write else []), "-R", request, img], capture_output=True,
                          text=True, check=True).stdout


def _inode(img: Path, path: str) -> int:
    return int(_debugfs(img, f"stat {path}").split("Inode: ", 1)[1].split()[0])


def _point_entry(img: Path, directory: str, name: bytes, inode: int) -> None:
    """Rewrite the inode number of NAME's entry in DIRECTORY's first block (a crafted link)."""
    block = int(_debugfs(img, f"blocks {directory}").split()[0])
    data = bytearray(img.read_bytes())
    base = block * 4096
    # an entry: inode (4), rec_len (2), name_len (1), file type (1: file, 2: directory), name
    found = [data.find(bytes([len(name), t]) + name, base, base + 4096) for t in (1, 2)]
    pos = max(found) - 6
    assert pos >= base, f"no entry {name!r} in {directory}"
    struct.pack_into("<I", data, pos, inode)
    img.write_bytes(bytes(data))


def _archive(img: Path, out: Path):
    return vm2c("archive", img, "-o", out, "--engine", "userspace", "--root", "fs", "--preset", "none")


def test_a_directory_reachable_by_two_names_is_refused(tmp_path):
    img = _ext4(tmp_path, lambda t: [(t / d / "x").mkdir(parents=True) for d in ("aa", "bb")])
    _point_entry(img, "/", b"bb", _inode(img, "/aa"))
    proc = _archive(img, tmp_path / "out")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert "/bb: the same directory as /aa (reachable by two names)" in proc.stderr
    assert not (tmp_path / "out" / "img.tar").exists()


def test_a_symlink_over_4_KiB_is_not_read(tmp_path):
    def build(t):
        (t / "big").write_bytes(b"z" * (1 << 20))
        (t / "ln").symlink_to("big")
    img = _ext4(tmp_path, build)
    _debugfs(img, f"sif /ln size {1 << 20}", write=True)
    _debugfs(img, f"sif /ln block[2] {_debugfs(img, 'blocks /big').split()[0]}", write=True)
    proc = _archive(img, tmp_path / "out")
    assert proc.returncode == 2 and "a symlink of 1048576 bytes" in proc.stderr and "over 4096" in proc.stderr, \
        proc.stderr


def test_an_inode_reached_twice_is_archived_once(tmp_path):
    """Two names, one inode, link count 1 (as crafted): the data is stored once, the second
    name is a hard link to the first, as it would be with an honest count of 2."""
    def build(t):
        (t / "f1").write_bytes(bytes(range(256)) * 16384)  # 4 MiB
        (t / "f2").write_bytes(b"x")
    img = _ext4(tmp_path, build)
    _point_entry(img, "/", b"f2", _inode(img, "/f1"))
    assert "Links: 1" in _debugfs(img, "stat /f1")
    out = tmp_path / "out"
    proc = _archive(img, out)
    assert proc.returncode == 0, proc.stderr
    with tarfile.open(out / "img.tar") as tf:
        f1, f2 = tf.getmember("./f1"), tf.getmember("./f2")
        assert f1.isfile() and f1.size == 4 << 20
        assert f2.islnk() and f2.linkname == "./f1"
    assert (out / "img.tar").stat().st_size < 5 << 20  # the 4 MiB once, not twice








def test_an_extent_past_the_filesystem_is_not_read(tmp_path):
    """A file's extent moved to block 100000 of an 8192-block filesystem: read, it would pull
    in whatever follows the partition (another filesystem's data) or fail deep inside a read."""
    img = _ext4(tmp_path, lambda t: (t / "f").write_bytes(b"data" * 4096))
    _debugfs(img, "sif /f block[5] 100000", write=True)  # i_block[5]: the first extent's start
    with open(img, "ab") as f:
        f.truncate(600 << 20)  # the bytes an out-of-range extent would reach do exist
    proc = _archive(img, tmp_path / "out")
    assert proc.returncode == 2 and "an extent at block 100000 lies past the filesystem's 8192 blocks" in proc.stderr, \
        proc.stderr


@pytest.mark.parametrize("engine", ["kernel", "userspace"])
def test_overlapping_partitions_are_refused(tmp_path, engine):
    """An MBR whose second partition starts inside the first (sfdisk will not write one; the
    entry is patched). Read as given, one filesystem would be taken for part of another."""
    disk = tmp_path / "overlap.raw"
    subprocess.run(["truncate", "-s", "64M", disk], check=True)
    subprocess.run(["sfdisk", "-q", disk], input=b"label: dos\nstart=2048, size=40960\nstart=43008, size=20000\n",
                   check=True)
    data = bytearray(disk.read_bytes())
    struct.pack_into("<I", data, 446 + 16 + 8, 30000)  # entry 2's first sector, inside entry 1
    disk.write_bytes(bytes(data))
    proc = vm2c("inspect", disk, "--engine", engine)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert "partition table is corrupt or crafted: p2 (from sector 30000) overlaps p1 (sectors 2048-43007)" \
        in proc.stderr




@pytest.mark.parametrize("engine", ["kernel", "userspace"])
def test_lvs_sharing_extents_are_refused(disks, tmp_path, engine):
    """The demo VG's metadata with swap moved onto the root's first extent (LVM never maps an
    extent twice): read as given, the root's blocks would also be 'swap', or the other way round."""
    img = tmp_path / "shared.raw"
    data = bytearray(disks.get("demo").read_bytes())
    old, new = b'stripes = [\n"pv0", 24\n]', b'stripes = [\n"pv0",  0\n]'
    at = data.rindex(old)
    data[at:at + len(old)] = new
    img.write_bytes(bytes(data))
    proc = vm2c("inspect", img, "--engine", engine)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert "LVM metadata is corrupt or crafted: LVs 'demo/swap' and 'demo/root' share extents of one PV" in proc.stderr


def test_a_directory_dag_under_an_excluded_path_is_estimated_in_bounded_time(tmp_path):
    """/var/tmp (left out by the default preset) holds a/ and b/ at 30 levels, each b patched to
    name its sibling a: the preset estimate walked 2**30 directories. Now each directory is
    counted once, and the archive's walk (which excludes /var/tmp/*) finishes normally."""
    depth = 30

    def build(t):
        d = t / "var" / "tmp"
        for _ in range(depth):
            (d / "b").mkdir(parents=True)
            d = d / "a"
        d.mkdir(parents=True)
    img = _ext4(tmp_path, build)
    path = "/var/tmp"
    for _ in range(depth):
        _point_entry(img, path, b"b", _inode(img, f"{path}/a"))
        path += "/a"
    proc = vm2c("archive", img, "-o", tmp_path / "out", "--engine", "userspace", "--root", "fs", timeout=120)
    assert proc.returncode == 0, proc.stderr
    with tarfile.open(tmp_path / "out" / "img.tar") as tf:
        assert "./var/tmp" in tf.getnames() and not any(n.startswith("./var/tmp/") for n in tf.getnames())


