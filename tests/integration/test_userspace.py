"""The user-space engine (issue 7): the same inspection and the same tar as the
kernel route, for every fixture disk and format, with no root needed."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import tarfile
from pathlib import Path

import pytest
from conftest import bounded, validated
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from manifest import compare, tar_manifest
from test_hostile import as_nobody, public_dir  # noqa: F401  (fixture)

from vm2c_tui.convert.conversion import Conversion, Options
from vm2c_tui.read.engine import inspect as engine_inspect
from vm2c_tui.source.diskimage import open_image
from vm2c_tui.source.identify import identify

EXCLUDES = {"hostile": ["huge"]}  # an 8 GiB sparse file: 8 GiB of zeros in every tar, no news in it
FIXTURES = {  # recipe: (formats, root id when none is detected)
    "full": (["raw", "qcow2", "vdi", "vmdk", "vmdk-stream", "vmdk-flat", "vhd", "vhdx", "qcow2-backing"], None),
    "demo": (["raw", "qcow2", "vdi", "vmdk"], None),
    "mbr": (["raw", "qcow2", "vdi", "vmdk"], None),
    "bare": (["raw", "qcow2", "vdi", "vmdk"], None),
    "btrfs_subvol": (["raw", "qcow2", "vdi", "vmdk"], None),
    "hostile": (["raw", "vdi"], "fs"),
    "hostile_fstab": (["raw", "vdi"], None),
}
CASES = [(name, fmt) for name, (fmts, _) in FIXTURES.items() for fmt in fmts]


def _archive(src: Path, out: Path, engine: str, root: str | None, excludes=(), sparse=False) -> dict:
    with Conversion(src, Options(root=root, preset="none", engine=engine, excludes=list(excludes),
                                 sparse=sparse)) as conv:
        conv.inspect()
        conv.plan()
        conv.prepare(output_dir=out)
        res = conv.write_archive(out)
    return tar_manifest(res.tar)


def _link_groups(man: dict) -> list[list[bytes]]:
    groups: dict = {}
    for name, e in man.items():
        if e.get("linked_to"):
            groups.setdefault(e["linked_to"], []).append(name)
    return sorted(sorted(g) for g in groups.values())


@pytest.fixture(scope="module")
def kernel_tars(disks, tmp_path_factory):
    """The kernel route's tar of each fixture's raw image (its other formats are checked
    against the raw one by test_archive), made once."""
    out = {}
    for name, (_, root) in FIXTURES.items():
        d = tmp_path_factory.mktemp(f"kernel-{name}")
        out[name] = _archive(disks.get(name), d, "kernel", root, EXCLUDES.get(name, ()))
    return out


@pytest.mark.parametrize("name,fmt", CASES, ids=[f"{n}-{f}" for n, f in CASES])
def test_userspace_tar_matches_the_kernel_route(disks, kernel_tars, tmp_path, name, fmt, no_leaks):
    src = disks.get(name, fmt)
    before = hashlib.sha256(src.read_bytes()).hexdigest()
    mine = _archive(src, tmp_path, "userspace", FIXTURES[name][1], EXCLUDES.get(name, ()))
    theirs = kernel_tars[name]
    assert compare(theirs, mine) == []
    assert _link_groups(theirs) == _link_groups(mine)
    assert len(mine) > 40
    assert hashlib.sha256(src.read_bytes()).hexdigest() == before


@pytest.mark.parametrize("name,fmt", [c for c in CASES if c[1] in ("raw", "vdi", "vmdk-stream")])
def test_userspace_inspection_matches_the_kernel_route(disks, name, fmt):
    src = disks.get(name, fmt)
    kernel = engine_inspect(src, "kernel").to_json()
    mine = engine_inspect(src, "userspace").to_json()
    assert mine == kernel


def test_a_kernel_fuse_view_gives_the_kernel_route_the_same_tar_for_qcow2(disks, kernel_tars, tmp_path):
    """The kernel route's own tar of a qcow2 (FUSE view) equals its raw one: the
    differential test above may compare every format with the raw image's tar."""
    assert compare(kernel_tars["full"], _archive(disks.get("full", "qcow2"), tmp_path, "kernel", None)) == []


@pytest.mark.parametrize("name", list(FIXTURES))
def test_without_root_inspect_and_archive_work_on_every_fixture(disks, public_dir, name):  # noqa: F811
    fmts, root = FIXTURES[name]
    for fmt in ("raw", fmts[1]):
        src = disks.get(name, fmt)
        img = public_dir / f"{name}-{fmt}{''.join(src.suffixes)}"
        subprocess.run(["cp", "--sparse=always", src, img], check=True)
        os.chmod(img, 0o644)
        ins = as_nobody("inspect", "--json", img)
        assert ins.returncode == 0, ins.stderr
        doc = validated("inspect", json.loads(ins.stdout))
        assert doc["root"] is None if root else doc["root"]
        out = public_dir / f"out-{name}-{fmt}"
        out.mkdir()
        os.chown(out, 65534, 65534)
        args = ["archive", img, "-o", out] + (["--root", root] if root else [])
        args += [a for pat in EXCLUDES.get(name, ()) for a in ("--exclude", pat)]
        arch = as_nobody(*args)
        assert arch.returncode == 0, arch.stderr
        assert "via user space" in arch.stderr
        with tarfile.open(out / "img.tar") as tf:
            names = tf.getnames()
        assert "./etc/passwd" in names and "./bin/busybox" in names


def test_vdi_blocks_stored_out_of_order_read_right(tmp_path):
    """VirtualBox writes blocks in the guest's write order; qemu-img in disk order.
    Shuffled writes make the block map non-monotonic; reads crossing blocks must still match."""
    img = tmp_path / "shuffled.vdi"
    subprocess.run(["qemu-img", "create", "-q", "-f", "vdi", img, "8M"], check=True)
    mib = 1 << 20
    for i, blk in enumerate([5, 1, 7, 0, 3, 6, 2, 4]):
        subprocess.run(["qemu-io", "-f", "vdi", "-c", f"write -P {i + 1} {blk * mib} {mib}", img],
                       check=True, capture_output=True)
    raw = tmp_path / "ref.raw"
    subprocess.run(["qemu-img", "convert", "-f", "vdi", "-O", "raw", img, raw], check=True)
    ref = raw.read_bytes()
    disk = open_image(identify(img))
    try:
        for off, n in [(0, 8 * mib), (mib - 7, 14), (3 * mib - 100_000, 2 * mib + 200_001)]:
            assert disk.pread(n, off) == ref[off:off + n]
    finally:
        disk.close()






# -- cases the fixtures do not hold: made here with real mkfs, mount and fallocate --------

def _stale(path: Path, size: int) -> None:
    """A file full of a non-zero pattern: blocks a filesystem never wrote show it, so reading
    preallocated (unwritten) space as data would be seen."""
    with open(path, "wb") as f:
        f.write(b"\xabSTALE!\xcd" * (size // 8))


def _populate(mnt: Path) -> None:
    (mnt / "small").write_bytes(b"tiny")
    (mnt / "compressible").write_bytes(b"the same line, again and again\n" * 40000)  # btrfs: zstd extents
    (mnt / "inline-ish").write_bytes(bytes(range(150)))  # > 60 bytes: ext4 inline_data keeps it in the xattr area
    (mnt / "dir").mkdir()
    for i in range(3):
        (mnt / "dir" / f"f{i}").write_text(str(i))
    old = mnt / "before-1970"
    old.write_text("old\n")
    os.utime(old, ns=(-86_400 * 365 * 10 * 10**9, -86_400 * 365 * 10 * 10**9 + 123_456_789))
    fine = mnt / "nanoseconds"
    fine.write_text("ns\n")
    os.utime(fine, ns=(1_600_000_000_123_456_789, 1_600_000_000_123_456_789))
    pre = mnt / "prealloc"
    with open(pre, "wb") as f:
        f.write(b"written head\n")
    subprocess.run(["fallocate", "-o", "4096", "-l", str(4 << 20), pre], check=True)  # unwritten extents
    subprocess.run(["fallocate", "-l", str(1 << 20), mnt / "prealloc-only"], check=True)
    many = mnt / "many-xattrs"
    many.write_text("x\n")
    for i in range(20):  # past the inode: XFS moves them to a leaf block
        os.setxattr(many, f"user.attr{i:02d}", b"v" * 24)
    acl = mnt / "acl"
    acl.write_text("acl\n")
    subprocess.run(["setfacl", "-m", "u:1000:rw,g:100:r", acl], check=True)
    (mnt / "acl-dir").mkdir()
    subprocess.run(["setfacl", "-d", "-m", "u:1000:rx", mnt / "acl-dir"], check=True)
    subprocess.run(["setcap", "cap_net_raw+ep", mnt / "small"], check=True)


@pytest.fixture(scope="module")
def edge_images(tmp_path_factory):
    """ext4 with inline_data, xfs, and btrfs compressing with zstd, each filled through a real
    mount (fallocate needs one)."""
    d = tmp_path_factory.mktemp("edge")
    out = {}
    for name, mkfs, opts in (("ext4-inline", ["mkfs.ext4", "-q", "-F", "-O", "inline_data,^has_journal"], "rw"),
                             ("xfs", ["mkfs.xfs", "-q", "-f"], "rw"),
                             ("btrfs-zstd", ["mkfs.btrfs", "-q", "-f"], "compress-force=zstd")):
        img = d / f"{name}.img"
        _stale(img, 320 << 20)
        subprocess.run([*mkfs, img], check=True)
        mnt = d / f"{name}-mnt"
        mnt.mkdir()
        # our own loop device, detached by us: `mount -o loop` frees it asynchronously
        loop = subprocess.run(["losetup", "-f", "--show", img], capture_output=True, text=True,
                              check=True).stdout.strip()
        try:
            subprocess.run(["mount", "-o", opts, loop, mnt], check=True)
            try:
                _populate(mnt)
            finally:
                subprocess.run(["umount", mnt], check=True)
        finally:
            subprocess.run(["losetup", "-d", loop], check=True)
        out[name] = img
    return out


@pytest.mark.parametrize("name", ["ext4-inline", "xfs", "btrfs-zstd"])
def test_userspace_edge_cases_match_the_kernel_route(edge_images, tmp_path, name):
    img = edge_images[name]
    kernel = _archive(img, tmp_path / "k", "kernel", "fs")
    mine = _archive(img, tmp_path / "u", "userspace", "fs")
    assert compare(kernel, mine) == []
    assert mine[b"./prealloc"]["size"] == 4096 + (4 << 20)
    with tarfile.open(tmp_path / "u" / "img.tar") as tf:
        data = tf.extractfile("./prealloc").read()
        assert data.startswith(b"written head\n") and data[13:] == bytes(len(data) - 13)
        assert tf.extractfile("./inline-ish").read() == bytes(range(150))
    assert mine[b"./before-1970"]["mtime"] < 0
    assert len([k for k in mine[b"./many-xattrs"]["xattrs"] if k.startswith("user.attr")]) == 20
    assert "system.posix_acl_access" in mine[b"./acl"]["xattrs"]
    assert "system.posix_acl_default" in mine[b"./acl-dir"]["xattrs"]
    assert "security.capability" in mine[b"./small"]["xattrs"]




@pytest.mark.parametrize("fmt", ["qcow2", "vmdk-stream", "vdi"])
def test_userspace_engine_needs_no_system_tools(disks, tmp_path, fmt):
    """As on macOS or Windows: no qemu-img, sfdisk, blkid, losetup or tar on PATH."""
    src = disks.get("full", fmt)
    env = {**os.environ, "PATH": str(tmp_path / "empty")}
    run = [__import__("sys").executable, "-m", "vm2c_tui"]
    ins = subprocess.run([*run, "inspect", "--engine", "userspace", "--json", src], env=env,
                         capture_output=True, text=True)
    assert ins.returncode == 0, ins.stderr
    doc, ref = validated("inspect", json.loads(ins.stdout)), engine_inspect(src, "kernel").to_json()
    assert (doc["format"], doc["subformat"]) == (ref["format"], ref["subformat"])
    assert any("qemu-img is not installed" in w for w in doc["warnings"])
    assert doc["virtual_size"] == ref["virtual_size"] and doc["partitions"] == ref["partitions"]
    arch = subprocess.run([*run, "archive", "--engine", "userspace", src, "-o", tmp_path / "out"], env=env,
                          capture_output=True, text=True)
    assert arch.returncode == 0, arch.stderr
    assert tarfile.open(tmp_path / "out" / "img.tar").getmember("./usr/bin/ping").pax_headers[
        "SCHILY.xattr.security.capability"]


def test_hostile_vmdk_extent_outside_is_refused_without_qemu(tmp_path):
    img = tmp_path / "evil.vmdk"
    img.write_text('# Disk DescriptorFile\nversion=1\ncreateType="monolithicFlat"\n'
                   'RW 16 FLAT "../../../../etc/passwd" 0\n')
    env = {**os.environ, "PATH": str(tmp_path / "empty")}
    proc = subprocess.run([__import__("sys").executable, "-m", "vm2c_tui", "inspect", "--engine", "userspace", img],
                          env=env, capture_output=True, text=True)
    assert proc.returncode == 2 and "outside" in proc.stderr and "Traceback" not in proc.stderr


def test_a_qcow2_with_an_external_data_file_is_refused_without_qemu(tmp_path):
    img = tmp_path / "external.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-o", f"data_file={tmp_path}/data.raw", img, "16M"],
                   check=True)
    env = {**os.environ, "PATH": str(tmp_path / "empty")}
    proc = subprocess.run([__import__("sys").executable, "-m", "vm2c_tui", "inspect", "--engine", "userspace", img],
                          env=env, capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.splitlines() == [
        f"vm2c: {img}: a qcow2 image with an external data file is not read in user space "
        "(the kernel route reads it, with qemu-img installed)"], proc.stderr


@pytest.mark.parametrize("name", ["full", "hostile"])
def test_sparse_members_on_request_match_gnu_tars(disks, tmp_path, name):
    """archive --sparse (a tar to keep): both engines write GNU sparse 1.0 members for the
    same files; GNU tar reads ours; an 8 GiB hole costs nothing; build refuses the tar."""
    root = FIXTURES[name][1]
    kernel = _archive(disks.get(name), tmp_path / "k", "kernel", root, sparse=True)
    mine = _archive(disks.get(name, "vdi"), tmp_path / "u", "userspace", root, sparse=True)
    assert compare(kernel, mine) == []
    tar = tmp_path / "u" / "img.tar"
    assert not (tmp_path / "u" / "Dockerfile").exists()
    listing = subprocess.run(["tar", "-tvf", tar], capture_output=True, text=True, check=True).stdout
    sparse_file = "./huge" if name == "hostile" else "./srv/sparse.img"
    size = mine[sparse_file.encode()]["size"]
    assert any(line.endswith(sparse_file) and f" {size} " in line for line in listing.splitlines())
    if name == "hostile":
        assert size == 8 << 30 and tar.stat().st_size < 64 << 20
    with tarfile.open(tar) as tf:
        assert tf.getmember(sparse_file).sparse
    from conftest import vm2c

    refused = vm2c("build", tmp_path / "u", "--tag", "vm2c-test/sparse:no")
    assert refused.returncode == 2 and "sparse members" in refused.stderr and "Traceback" not in refused.stderr


def _crafted_ext4(tmp_path: Path, name: str) -> Path:
    tree = tmp_path / f"{name}-tree"
    (tree / "d").mkdir(parents=True)
    (tree / "d" / "AAAAAAAA").write_text("x\n")
    (tree / "etc").mkdir()
    img = tmp_path / f"{name}.img"
    subprocess.run(["mkfs.ext4", "-q", "-F", "-O", "^metadata_csum", "-d", tree, img, "16M"], check=True)
    return img


@pytest.mark.parametrize("attack", ["loop", "dotdot-name"])
def test_crafted_directories_are_refused_in_user_space(tmp_path, attack):
    """A crafted image must not make the walk run forever or put members outside the tree."""
    img = _crafted_ext4(tmp_path, attack)
    if attack == "loop":  # a directory linked into itself
        subprocess.run(["debugfs", "-w", "-R", "ln /d /d/again", img], check=True, capture_output=True)
    else:  # a name that climbs out: ../../xx
        data = img.read_bytes()
        assert data.count(b"AAAAAAAA") == 1
        img.write_bytes(data.replace(b"AAAAAAAA", b"../../xx"))
    proc = subprocess.run([__import__("sys").executable, "-m", "vm2c_tui", "archive", "--engine", "userspace",
                           "--root", "fs", "--no-fstab", img, "-o", tmp_path / "out"], capture_output=True, text=True)
    assert proc.returncode == 2, proc.stderr
    assert "corrupt or crafted" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "out" / "img.tar").exists() and not (tmp_path / "out" / "img.tar.partial").exists()


# -- fuzzing the user-space readers: mutated real metadata never hangs them or escapes as a traceback --

class _BytesDisk:
    def __init__(self, data: bytes):
        self.data, self.size = data, len(data)

    def pread(self, n: int, off: int) -> bytes:
        return self.data[off:off + n]


@pytest.fixture(scope="module")
def gpt_head(disks):
    raw = disks.get("demo")
    with open(raw, "rb") as f:
        head = f.read(34 * 512)
        f.seek(-33 * 512, os.SEEK_END)
        return head, f.read()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(muts=st.lists(st.tuples(st.integers(0, 34 * 512 - 1), st.integers(0, 255)), min_size=1, max_size=30),
       dos=st.booleans())
def test_fuzz_own_partition_table(gpt_head, muts, dos):
    from vm2c_tui.errors import Vm2cError
    from vm2c_tui.inspect.partitions import read_table as own_table

    head, backup = gpt_head
    size = 8 << 20
    buf = bytearray(head) + bytearray(size - len(head) - len(backup)) + bytearray(backup)
    if dos:  # an MBR with an extended partition chain instead
        buf[446:462] = bytes([0, 0, 0, 0, 0x05, 0, 0, 0]) + (1).to_bytes(4, "little") + (100).to_bytes(4, "little")
        buf[512 + 510:512 + 512] = b"\x55\xaa"
    for off, val in muts:
        buf[off] = val
    try:
        label, parts = own_table(_BytesDisk(bytes(buf)), [])
        for p in parts:
            assert p.start > 0 and (p.start + p.sectors) * 512 <= size
    except Vm2cError as exc:
        assert exc.message and "\n" not in exc.message


@pytest.fixture(scope="module")
def small_ext(tmp_path_factory):
    """A 4 MiB ext4 (1 KiB blocks, 128-byte inodes: mke2fs's 'small' type) holding a little tree."""
    d = tmp_path_factory.mktemp("fuzz-ext")
    tree = d / "tree"
    for i in range(6):
        (tree / f"dir{i}" / "sub").mkdir(parents=True)
        (tree / f"dir{i}" / "file").write_bytes(bytes([i]) * (3000 * i + 10))
        (tree / f"dir{i}" / "link").symlink_to(f"../dir{(i + 1) % 6}")
    img = d / "small.img"
    subprocess.run(["mkfs.ext4", "-q", "-F", "-d", tree, img, "4M"], check=True)
    return img.read_bytes()


class _Enough(Exception):
    pass


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(muts=st.lists(st.tuples(st.integers(0, (256 << 10) - 1), st.integers(0, 255)), min_size=1, max_size=40))
def test_fuzz_userspace_walk_never_hangs(small_ext, muts):
    """Any corruption ends in a tar or in one Vm2cError line, in a child held to 20 CPU-seconds
    and 1 GiB more memory (conftest.bounded): a crafted image cannot make the walk spin or
    balloon (declared sizes may be huge: output is capped here, not there)."""
    from vm2c_tui.archive.usertar import _Counter, produce
    from vm2c_tui.errors import Vm2cError
    from vm2c_tui.plan.excludes import Filters
    from vm2c_tui.read.userspace.fs_ext import ExtReader
    from vm2c_tui.read.userspace.tree import Mounted, UserspaceTree

    buf = bytearray(small_ext)
    for off, val in muts:
        buf[off] = val
    disk = _BytesDisk(bytes(buf))
    written = [0]

    def sink(b: bytes) -> None:
        written[0] += len(b)
        if written[0] > 64 << 20:
            raise _Enough

    def walk() -> str:
        try:
            reader = ExtReader(disk, 0, disk.size)
            produce(UserspaceTree(disk, [Mounted("/", "fs", reader)], Filters.build([], []), False),
                    sink, _Counter(0, None, 1))
            return "tar"
        except Vm2cError as exc:
            return "error: " + exc.message
        except _Enough:
            return "capped"

    got = bounded(walk, cpu_s=20)
    assert got in ("tar", "capped") or (got.startswith("error: ") and "\n" not in got), got


def test_auto_takes_the_userspace_engine_where_the_kernel_route_cannot_run(disks, tmp_path):
    """Root, but no losetup/mount/tar on PATH (a slim container): auto reads in user space."""
    src = disks.get("demo", "vdi")
    env = {**os.environ, "PATH": str(tmp_path / "empty")}
    proc = subprocess.run([__import__("sys").executable, "-m", "vm2c_tui", "archive", src, "-o", tmp_path / "out"],
                          env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "via user space" in proc.stderr
