"""Hostile and broken inputs: a disk image is data, never trusted (issue 6)."""

from __future__ import annotations

import json
import os
import socket
import struct
import subprocess
import sys
import tarfile
import threading
from pathlib import Path

import pytest
from conftest import REPO, bounded, validated, vm2c
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from diskbuilder.recipes import HOST_SECRET
from vm2c_tui.errors import Vm2cError
from vm2c_tui.inspect import lvm
from vm2c_tui.inspect.table import read_table
from vm2c_tui.source.identify import identify


@pytest.fixture
def host_secret():
    Path(HOST_SECRET).write_text('PRETTY_NAME="HOST SECRET"\nID=host\n')
    yield HOST_SECRET
    Path(HOST_SECRET).unlink(missing_ok=True)


def test_guest_symlinks_never_reach_the_host(disks, host_secret, no_leaks):
    doc = validated("inspect", json.loads(vm2c("inspect", "--json", disks.get("hostile"), check=True).stdout))
    text = json.dumps(doc)
    assert "HOST SECRET" not in text
    fs = doc["partitions"][0]
    assert fs["os"] is None and doc["root"] is None  # os-release points outside: nothing to read




def test_hostile_fstab_mount_point_symlink_and_entries_off_disk(disks, tmp_path, no_leaks):
    out = tmp_path / "out"
    proc = vm2c("archive", disks.get("hostile_fstab"), "-o", out, check=True)
    assert "mount point /var is a symlink in the guest" in proc.stderr
    assert "/data: not on this disk, left out" in proc.stderr
    assert "/srv: not on this disk, left out" in proc.stderr
    names = tarfile.open(out / "img.tar").getnames()
    assert "./var" in names and "./from-var-fs" not in names and "./etc/os-release" in names


def test_names_with_escape_sequences_are_shown_escaped(disks):
    out = vm2c("inspect", disks.get("hostile"), check=True).stdout
    assert "\x1b" not in out


# -- fuzzing: mutated real metadata, nothing escapes but Vm2cError -------------

@pytest.fixture(scope="module")
def demo_bytes(disks):
    return disks.get("demo").read_bytes()


def _pv_region(demo: bytes) -> tuple[int, bytes]:
    """The demo disk's LVM PV (p3) starts at sector 135168: label, metadata and some data."""
    return 135168 * 512, demo[135168 * 512: 135168 * 512 + (1 << 20)]


mutations = st.lists(st.tuples(st.integers(0, (1 << 20) - 1), st.integers(0, 255)), min_size=1, max_size=40)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(muts=mutations)
def test_fuzz_lvm_metadata(demo_bytes, muts):
    """Each mutation is parsed in a child held to 5 CPU-seconds and 512 MiB more memory
    (conftest.bounded): an answer or one Vm2cError line, never a spin or a balloon."""
    import io

    base, region = _pv_region(demo_bytes)
    buf = bytearray(region)
    for off, val in muts:
        # aim most mutations at the label and the metadata text
        off = off % 8192 if off % 3 else off
        buf[off] = val

    def parse() -> str:
        try:
            pv = lvm.read_pv(io.BytesIO(bytes(buf)), 0, len(buf))
            if pv and pv.mda_text:
                lvm.logical_volumes(pv.mda_text)
            return "ok"
        except Vm2cError as exc:
            return "error: " + exc.message

    got = bounded(parse, cpu_s=5, memory=512 << 20)
    assert got == "ok" or (got.startswith("error: ") and len(got) > 7 and "\n" not in got), got




@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(muts=st.lists(st.tuples(st.integers(0, 34 * 512 - 1), st.integers(0, 255)), min_size=1, max_size=30))
def test_fuzz_partition_table(demo_bytes, tmp_path, muts):
    img = tmp_path / "fuzz.raw"
    size = 8 << 20
    buf = bytearray(demo_bytes[: 34 * 512]) + bytearray(size - 34 * 512)
    buf[size - 33 * 512:] = demo_bytes[len(demo_bytes) - 33 * 512:]
    for off, val in muts:
        buf[off] = val
    img.write_bytes(bytes(buf))
    try:
        label, parts = read_table(str(img), size, [])
        for p in parts:
            assert p.start > 0 and (p.start + p.sectors) * 512 <= size
    except Vm2cError as exc:
        assert exc.message


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@example(fmt="vmdk", muts=[(32, 8)], cut=512)  # a descriptor offset past what seek takes: was EINVAL
@given(fmt=st.sampled_from(["qcow2", "vdi", "vmdk", "vhdx"]),
       muts=st.lists(st.tuples(st.integers(0, 4095), st.integers(0, 255)), min_size=1, max_size=12),
       cut=st.integers(512, 1 << 20))
def test_fuzz_format_detection(disks, tmp_path, fmt, muts, cut):
    data = bytearray(disks.get("demo", fmt).read_bytes()[:cut])
    for off, val in muts:
        if off < len(data):
            data[off] = val
    img = tmp_path / f"fuzz.{fmt}"
    img.write_bytes(bytes(data))
    try:
        identify(img)
    except Vm2cError as exc:
        assert str(img) in exc.message


# -- concurrency ----------------------------------------------------------------

@pytest.mark.parametrize("engine", ["kernel", "userspace"])
def test_an_image_naming_a_host_file_is_refused(disks, tmp_path, engine, no_leaks):
    """A qcow2 names files for qemu to open: its backing file and its external data file. One
    outside the image's directory (a host disk, say), or a name qemu would take as a network
    address or a driver spec, is refused by both engines before qemu opens or connects to
    anything, with the line that flattens an image the operator trusts."""
    here = tmp_path / "images"
    here.mkdir()
    host_disk = tmp_path / "host-disk.raw"  # stands for /dev/sda: a bootable disk of the host's
    host_disk.write_bytes(disks.get("bare").read_bytes())
    backed = here / "backed.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", host_disk, "-F", "raw", backed], check=True)
    external = here / "external.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-o", f"data_file={tmp_path}/data.raw", external,
                    "64M"], check=True)
    cases = [(backed, f"backing file {str(host_disk)!r} lies outside {here}; refusing to read it"),
             (external, f"external data file {str(tmp_path / 'data.raw')!r} lies outside {here}; refusing to read it")]
    # names qemu takes as a network or driver spec: refused before anything connects or opens
    listener = socket.create_server(("127.0.0.1", 0))
    listener.setblocking(False)
    port = listener.getsockname()[1]
    for name, spec in (("nbd", f"nbd://127.0.0.1:{port}/disk"), ("json", 'json:{"driver": "file", "filename": '
                                                                        f'"{host_disk}"}}')):
        img = here / f"{name}.qcow2"
        subprocess.run(["qemu-img", "create", "-q", "-u", "-f", "qcow2", "-b", spec, "-F", "raw", img, "64M"],
                       check=True)
        cases.append((img, f"its backing file {spec!r} is a qemu protocol or driver spec, not a file; refusing"))
    for img, words in cases:
        for cmd in (["inspect"], ["archive", "-o", tmp_path / "out"]):
            proc = vm2c(*cmd, img, "--engine", engine)
            assert proc.returncode == 2 and len(proc.stderr.splitlines()) == 1, proc.stderr
            assert words in proc.stderr, proc.stderr
            assert f"qemu-img convert -O qcow2 {img} flat.qcow2" in proc.stderr
            assert not (tmp_path / "out").exists()
    with pytest.raises(BlockingIOError):
        listener.accept()  # nothing ever connected
    listener.close()
    # the same pair next to the image is what hypervisors write, and is read
    (here / "base.raw").write_bytes(host_disk.read_bytes())
    subprocess.run(["qemu-img", "rebase", "-u", "-q", "-b", "base.raw", "-F", "raw", backed], check=True)
    doc = validated("inspect", json.loads(vm2c("inspect", "--json", backed, "--engine", engine, check=True).stdout))
    assert doc["root"] and doc["backing_chain"]


def test_two_conversions_at_once_do_not_collide(disks, tmp_path, no_leaks):
    jobs = [("a", disks.get("demo", "qcow2")), ("b", disks.get("full", "vdi")), ("c", disks.get("demo", "qcow2"))]
    results = {}

    def run(name, src):
        results[name] = vm2c("archive", src, "-o", tmp_path / name)

    threads = [threading.Thread(target=run, args=j) for j in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for name, _ in jobs:
        assert results[name].returncode == 0, results[name].stderr
        assert tarfile.open(tmp_path / name / "img.tar").getmember("./etc/os-release")
    assert not list(Path(os.environ.get("VM2C_STATE_DIR", "/run/vm2c")).glob("*.json"))


# -- privileges -------------------------------------------------------------------

def as_nobody(*args, cwd="/tmp"):
    env = {"PATH": "/usr/bin:/bin", "HOME": "/tmp", "PYTHONPATH": str(REPO)}
    return subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--",
                           sys.executable, "-m", "vm2c_tui", *map(str, args)],
                          capture_output=True, text=True, env=env, cwd=cwd)


@pytest.fixture
def public_dir():
    """A world-readable scratch dir, and a checkout nobody can reach: CI may clone into a 0700
    directory (mktemp -d), so nobody gets search permission on its ancestors, by ACL, for the test."""
    import shutil
    import tempfile

    granted = []
    for d in [*Path(__file__).resolve().parents, Path(sys.prefix)]:
        if d.is_dir() and not d.stat().st_mode & 0o001:
            subprocess.run(["setfacl", "-m", "u:nobody:x", d], check=True)
            granted.append(d)
    d = Path(tempfile.mkdtemp(prefix="vm2c-test-public-", dir="/tmp"))  # pytest's tmp_path is 0700
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)
    for g in granted:
        subprocess.run(["setfacl", "-x", "u:nobody", g], check=True)


def inspected_by_nobody(disks, public_dir, name: str, file_name: str = "") -> tuple[Path, dict]:
    """A fixture disk copied where nobody can read it, and `vm2c inspect --json` of it as nobody."""
    img = public_dir / (file_name or f"{name}.raw")
    subprocess.run(["cp", "--sparse=always", disks.get(name), img], check=True)
    os.chmod(img, 0o644)
    proc = as_nobody("inspect", "--engine", "kernel", "--json", img)
    assert proc.returncode == 0, proc.stderr
    return img, validated("inspect", json.loads(proc.stdout))


def test_debugfs_reads_an_image_named_with_a_question_mark(disks, public_dir):
    """debugfs splits 'FILE?offset=N' at the first '?': vm?x.raw opened 'vm' (here a decoy with
    another os-release). In its sandbox the image is /image, and the guest's own facts come back."""
    decoy = public_dir / "vm"
    subprocess.run(["cp", "--sparse=always", disks.get("bare"), decoy], check=True)
    os.chmod(decoy, 0o644)
    _img, doc = inspected_by_nobody(disks, public_dir, "demo", "vm?x.raw")
    assert doc["root"] == "demo/root"
    root = next(v for p in doc["partitions"] for v in p["volumes"] if v["id"] == "demo/root")
    assert root["os"]["pretty_name"] == "Demo Linux 1.0 (vm2c)"


def test_without_root_inspect_does_what_it_can(disks, public_dir):
    tmp_path = public_dir
    img, doc = inspected_by_nobody(disks, public_dir, "demo")
    assert doc["table"] == "gpt"
    assert {v["id"] for p in doc["partitions"] for v in p["volumes"]} == {"demo/root", "demo/swap"}
    assert any("not running as root" in w for w in doc["warnings"])
    assert doc["root"] == "demo/root"  # read with debugfs, no mount
    root = next(v for p in doc["partitions"] for v in p["volumes"] if v["id"] == "demo/root")
    assert root["os"]["pretty_name"] == "Demo Linux 1.0 (vm2c)"
    arch = as_nobody("archive", "--engine", "kernel", img, "-o", tmp_path / "out")
    assert arch.returncode == 2 and "needs root" in arch.stderr and "Traceback" not in arch.stderr
    assert "--engine userspace" in arch.stderr


def test_without_root_debugfs_also_stays_inside_the_guest(disks, public_dir, host_secret):
    img = public_dir / "hostile.raw"
    subprocess.run(["cp", "--sparse=always", disks.get("hostile"), img], check=True)
    os.chmod(img, 0o644)
    for engine in ("kernel", "userspace"):  # debugfs, and the user-space readers
        proc = as_nobody("inspect", "--engine", engine, "--json", img)
        assert proc.returncode == 0, proc.stderr
        assert "HOST SECRET" not in proc.stdout
        assert json.loads(proc.stdout)["partitions"][0]["os"] is None


def test_without_root_a_qcow2_falls_back_from_fuse_to_a_copy(disks, public_dir):
    img = public_dir / "demo.qcow2"
    subprocess.run(["cp", disks.get("demo", "qcow2"), img], check=True)
    os.chmod(img, 0o644)
    proc = as_nobody("inspect", "--engine", "kernel", img)
    assert proc.returncode == 0, proc.stderr
    assert "Read through: copy" in proc.stdout and "fuse failed" in proc.stdout
    assert "[root]" in proc.stdout
    assert not list(Path("/tmp").glob("vm2c-copy-*")) and not list(Path("/tmp").glob("vm2c-view-*"))


def test_without_root_an_lv_in_pieces_is_read_through_a_joined_copy(disks, public_dir):
    """debugfs reads one byte range; an LV grown with lvextend is two. Its pieces are copied
    joined into a private temporary file (no root needed for that), which debugfs reads."""
    _, doc = inspected_by_nobody(disks, public_dir, "extended")
    assert doc["root"] == "grownvg/root"
    root = next(v for p in doc["partitions"] for v in p["volumes"] if v["id"] == "grownvg/root")
    assert root["os"]["pretty_name"] == "Demo Linux 1.0 (vm2c)"
    assert not list(Path("/tmp").glob("vm2c-join-*"))


@pytest.fixture(scope="module")
def squashfs_guest(tmp_path_factory):
    """GPT: p1 an ext4 root whose fstab mounts p2, a squashfs, at /opt (the kernel here can
    mount squashfs, so only vm2c's own rule keeps it away from the kernel's parser)."""
    t = tmp_path_factory.mktemp("sq")
    root, opt = t / "root", t / "opt"
    (root / "etc").mkdir(parents=True)
    (root / "opt").mkdir()
    (root / "bin").mkdir()
    (root / "etc/os-release").write_text('ID=sq\nPRETTY_NAME="Squash guest"\n')
    (root / "etc/fstab").write_text("/dev/sda1 / ext4 defaults 0 1\n/dev/sda2 /opt squashfs ro 0 0\n")
    opt.mkdir()
    (opt / "from-squashfs").write_text("kernel parsed it\n")
    subprocess.run(["mkfs.ext4", "-q", "-F", "-d", root, t / "p1.img", "16M"], check=True)
    subprocess.run(["mksquashfs", opt, t / "p2.img", "-quiet", "-noappend"], check=True, capture_output=True)
    disk = t / "disk.raw"
    subprocess.run(["truncate", "-s", "24M", disk], check=True)
    subprocess.run(["sfdisk", "-q", disk], input=b"label: gpt\nstart=2048, size=32768\nstart=34816, size=8192\n",
                   check=True)
    for img, sector in ((t / "p1.img", 2048), (t / "p2.img", 34816)):
        subprocess.run(["dd", f"if={img}", f"of={disk}", "bs=512", f"seek={sector}", "conv=notrunc", "status=none"],
                       check=True)
    return disk


@pytest.mark.parametrize("engine", ["kernel", "userspace"])
def test_fstab_squashfs_is_not_handed_to_the_kernel(squashfs_guest, tmp_path, engine, no_leaks):
    out = tmp_path / "out"
    proc = vm2c("archive", squashfs_guest, "-o", out, "--root", "p1", "--engine", engine)
    assert proc.returncode == 0, proc.stderr
    assert "fstab /dev/sda2 /opt:" in proc.stderr, proc.stderr
    if engine == "kernel":  # user space has no squashfs signature: 'holds no readable filesystem'
        assert "vm2c does not let the kernel parse squashfs; left out" in proc.stderr, proc.stderr
    with tarfile.open(out / "img.tar") as tf:
        names = tf.getnames()
    assert "./opt" in names and "./opt/from-squashfs" not in names


def test_root_on_squashfs_is_refused_in_one_line(squashfs_guest, tmp_path):
    proc = vm2c("archive", squashfs_guest, "-o", tmp_path / "out", "--root", "p2", "--engine", "kernel")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "squashfs" in proc.stderr


def _qcow2_naming(path: Path, name: bytes) -> Path:
    """A qcow2 whose backing file name is NAME, bytes as they are (qemu-img would not write a NUL)."""
    subprocess.run(["qemu-img", "create", "-q", "-u", "-f", "qcow2", "-b", "x" * len(name), "-F", "raw", path, "16M"],
                   check=True)
    data = bytearray(path.read_bytes())
    off, size = struct.unpack_from(">QI", data, 8)
    data[off:off + size] = name
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("name", [b"base\x00/etc/shadow", b"x" * 300 + b"/y", b"z/" * 500,
                                  b"base.raw\r\x1b[2J../../host"], ids=["nul", "long-part", "long-path", "control"])
@pytest.mark.parametrize("engine", ["kernel", "userspace"])
def test_backing_names_that_are_not_paths_are_one_line(tmp_path, name, engine):
    img = _qcow2_naming(tmp_path / "odd.qcow2", name)
    proc = vm2c("inspect", img, "--engine", engine)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "\x1b" not in proc.stderr and "\r" not in proc.stderr and len(proc.stderr) < 800, proc.stderr


