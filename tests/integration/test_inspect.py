"""vm2c inspect on real disks in every format, and on broken input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import pytest
from conftest import data_root, fingerprint, mounted_ext4, validated, vm2c
from manifest import compare, tar_manifest, tree_manifest

from diskbuilder.layout import stable_uuid

FORMATS = ["raw", "qcow2", "qcow2-backing", "vdi", "vmdk", "vmdk-stream", "vmdk-flat", "vhd", "vhdx"]
FORMAT_NAME = {"raw": "raw", "qcow2": "qcow2", "qcow2-backing": "qcow2", "vdi": "vdi", "vmdk": "vmdk",
               "vmdk-stream": "vmdk", "vmdk-flat": "vmdk", "vhd": "vhd", "vhdx": "vhdx"}
SUBFORMAT = {"vdi": "dynamic", "vmdk": "monolithicSparse", "vmdk-stream": "streamOptimized",
             "vmdk-flat": "twoGbMaxExtentFlat", "vhd": "dynamic", "vhdx": "dynamic"}


def inspect_json(path, *args: str) -> dict:
    proc = vm2c("inspect", "--json", path, *args, check=True)
    return validated("inspect", json.loads(proc.stdout))


@pytest.mark.parametrize("fmt", FORMATS)
def test_full_disk_every_format(disks, fmt, no_leaks):
    path = disks.get("full", fmt)
    before = fingerprint(path)
    doc = inspect_json(path)
    assert doc["format"] == FORMAT_NAME[fmt] and doc["subformat"] == SUBFORMAT.get(fmt)
    assert doc["table"] == "gpt"
    if fmt == "vhd":  # Virtual PC rounds the size up to a CHS geometry
        assert 300 << 20 <= doc["virtual_size"] < 301 << 20
    else:
        assert doc["virtual_size"] == 300 << 20
    parts = {p["id"]: p for p in doc["partitions"]}
    assert [p["type"] for p in doc["partitions"]] == ["EFI System", "Linux filesystem", "Linux LVM"]
    assert parts["p1"]["fstype"] == "vfat" and parts["p1"]["label"] == "EFI"
    assert parts["p2"]["fstype"] == "ext4" and parts["p2"]["uuid"] == stable_uuid("full-boot")
    assert parts["p2"]["start"] == 69632 and parts["p2"]["end"] == 118783 and parts["p2"]["sectors"] == 49152
    vols = {v["id"]: v for v in parts["p3"]["volumes"]}
    assert set(vols) == {"fullvg/root", "fullvg/var", "fullvg/home", "fullvg/swap"}
    assert vols["fullvg/root"]["fstype"] == "ext4" and vols["fullvg/root"]["size"] == 180 << 20
    assert vols["fullvg/swap"]["fstype"] == "swap"
    assert vols["fullvg/root"]["root"] is True
    assert vols["fullvg/root"]["os"] == {"id": "demolinux", "version_id": "1.0",
                                         "pretty_name": "Demo Linux 1.0 (vm2c)"}
    assert doc["root"] == "fullvg/root"
    assert fingerprint(path) == before, "the source image changed"


def test_mbr_logical_partitions_xfs_btrfs(disks, no_leaks):
    doc = inspect_json(disks.get("mbr"))
    assert doc["table"] == "dos"
    ids = [p["id"] for p in doc["partitions"]]
    assert ids == ["p1", "p2", "p5", "p6", "p7"]
    parts = {p["id"]: p for p in doc["partitions"]}
    assert parts["p2"]["type"] == "Extended"
    assert parts["p5"]["fstype"] == "xfs" and parts["p5"]["root"]
    assert parts["p6"]["fstype"] == "btrfs"
    assert parts["p7"]["type"] == "Linux swap / Solaris"
    assert doc["root"] == "p5"


def test_bare_filesystem_has_no_table(disks, no_leaks):
    doc = inspect_json(disks.get("bare"))
    assert doc["table"] == "none"
    assert [p["id"] for p in doc["partitions"]] == ["fs"]
    assert doc["root"] == "fs"


def test_human_output_is_a_cfdisk_table_with_fstab(disks):
    out = vm2c("inspect", disks.get("demo"), check=True).stdout
    assert "Device" in out and "Sectors" in out and "EFI System" in out
    assert " └ demo/root" in out and "[root]" in out
    assert "/boot ext4  -> p2" in out
    assert "skipped: swap" in out


def test_fstab_targets_resolved_service(disks):
    from vm2c_tui.read.kernel.inspect import inspect_image

    insp = inspect_image(disks.get("full"))
    targets = {e.mountpoint: e.target for e in insp.root_volume.fstab if e.target}
    assert targets == {"/": "fullvg/root", "/boot": "p2", "/boot/efi": "p1",
                       "/var": "fullvg/var", "/home": "fullvg/home"}
    skips = {e.mountpoint: e.skip for e in insp.root_volume.fstab if e.skip}
    assert skips == {"none": "swap", "/mnt/nfs": "network filesystem", "/tmp": "pseudo filesystem"}


def test_disk_held_open_by_a_process_is_warned(disks, tmp_path):
    path = disks.get("bare")
    holder = subprocess.Popen([sys.executable, "-c", "import sys,time; f=open(sys.argv[1],'rb'); time.sleep(60)",
                               str(path)])
    try:
        for _ in range(50):
            if any(os.path.realpath(f"/proc/{holder.pid}/fd/{fd}") == str(path)
                   for fd in os.listdir(f"/proc/{holder.pid}/fd")):
                break
            time.sleep(0.05)
        doc = inspect_json(path)
        assert any(f"pid {holder.pid}" in w and "Shut it down" in w for w in doc["warnings"])
    finally:
        holder.kill()
        holder.wait()


def _bad_inputs(tmp_path, disks):
    empty = tmp_path / "empty.img"
    empty.touch()
    tiny = tmp_path / "tiny.img"
    tiny.write_text("hello\n")  # a text file given by mistake
    rnd = tmp_path / "random.img"
    rnd.write_bytes(os.urandom(1 << 20))
    vdi = disks.get("demo", "vdi").read_bytes()
    tvdi = tmp_path / "trunc.vdi"
    tvdi.write_bytes(vdi[: len(vdi) // 3])
    qc = disks.get("demo", "qcow2").read_bytes()
    tqc = tmp_path / "trunc.qcow2"
    tqc.write_bytes(qc[: len(qc) // 3])
    gpt = tmp_path / "garbage-gpt.img"
    with open(gpt, "wb") as f:
        f.truncate(8 << 20)
    subprocess.run(["sfdisk", "-q", "--no-reread", "--no-tell-kernel", str(gpt)],
                   input=b"label: gpt\nsize=2MiB\n", check=True)
    with open(gpt, "r+b") as f:  # primary and backup entries: random bytes
        f.seek(1024)
        f.write(os.urandom(16384))
        f.seek((8 << 20) - 33 * 512)
        f.write(os.urandom(16384))
    return {
        "missing": (tmp_path / "nope.img", "no such file"),
        "directory": (tmp_path, "is a directory"),
        "empty": (empty, "empty file"),
        "tiny": (tiny, "6 bytes, too small to be a disk image"),
        "random": (rnd, "no partition table and no filesystem"),
        "truncated-vdi": (tvdi, "vdi image"),
        "truncated-qcow2": (tqc, "qcow2 image"),
        "garbage-gpt": (gpt, "partition table"),
    }


def test_bad_input_one_line_exit_2(disks, tmp_path, no_leaks):
    for name, (path, words) in _bad_inputs(tmp_path, disks).items():
        proc = vm2c("inspect", path)
        assert proc.returncode == 2, (name, proc.stderr)
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1, (name, proc.stderr)
        assert "Traceback" not in proc.stderr
        assert words in lines[0] and str(path) in lines[0], (name, lines[0])
        assert proc.stdout == ""


def test_doctor_lists_the_machine(tmp_path):
    doc = validated("doctor", json.loads(vm2c("doctor", "--json", "--workdir", tmp_path, check=True).stdout))
    names = {c["name"]: c for c in doc}
    for key in ("root", "nbd", "loop", "fuse", "device-mapper", "GNU tar", "docker", "work dir space"):
        assert key in names
    assert names["root"]["ok"] is True
    assert names["user-space engine"]["ok"] is True  # scripts/setup installs the extra
    assert names["nbd"]["ok"] == bool([d for d in os.listdir("/dev") if d.startswith("nbd")])
    assert names["GNU tar"]["detail"].startswith("tar (GNU tar)")


@pytest.mark.parametrize("journal", [True, False])
def test_filesystem_journal_is_read_from_the_kernel(tmp_path, journal, no_leaks):
    from vm2c_tui.host.system import filesystem_of

    mnt = tmp_path / "mnt"
    mnt.mkdir()
    with mounted_ext4(tmp_path / "fs.img", mnt, "64M", *([] if journal else ["-O", "^has_journal"])) as loop:
        fs = filesystem_of(str(mnt))
    assert (fs.fstype, f"/dev/{fs.device}", fs.journal) == ("ext4", loop, journal)
    assert 40 << 20 < fs.free < 64 << 20


def test_doctor_reports_the_daemons_data_root(tmp_path, dockerd):
    from vm2c_tui.host.system import filesystem_of

    doc = validated("doctor", json.loads(vm2c("doctor", "--json", "--workdir", tmp_path, check=True).stdout))
    check = {c["name"]: c for c in doc}["docker data root"]
    root = data_root(dockerd)
    fs = filesystem_of(root)
    assert check["ok"] is True and check["detail"].startswith(f"{root} (")
    assert f"on {fs.fstype}" in check["detail"]
    assert ("without a journal" in check["detail"]) == (fs.journal is False)
    assert ("inodes freed" in check["meaning"]) == (fs.journal is False)
    assert "write it back while the import runs" in check["meaning"]
    off = json.loads(vm2c("doctor", "--json", "--workdir", tmp_path, check=True,
                          env={**os.environ, "VM2C_EARLY_WRITEBACK": "0"}).stdout)
    assert "write it back" not in {c["name"]: c for c in off}["docker data root"]["meaning"]


def test_primary_gpt_corrupt_uses_backup_with_warning(disks, tmp_path):
    img = tmp_path / "primary-broken.raw"
    subprocess.run(["cp", "--sparse=always", disks.get("demo"), img], check=True)
    with open(img, "r+b") as f:
        f.seek(1024)
        f.write(os.urandom(16384))
    doc = inspect_json(img)
    assert doc["table"] == "gpt" and doc["root"] == "demo/root"
    assert any("backup" in w for w in doc["warnings"])


def test_luks_unknown_and_unmountable_are_listed_not_fatal(disks, tmp_path, no_leaks):
    from diskbuilder.build import MIB, _dd

    luks = tmp_path / "luks.img"
    with open(luks, "wb") as f:
        f.truncate(20 * MIB)
    subprocess.run(["cryptsetup", "luksFormat", "-q", "--type", "luks2", "--pbkdf", "pbkdf2",
                    "--pbkdf-force-iterations", "1000", str(luks), "-d", "-"], input=b"pass", check=True)
    disk = tmp_path / "mixed.raw"
    with open(disk, "wb") as f:
        f.truncate(112 * MIB)
    subprocess.run(["sfdisk", "-q", "--no-reread", "--no-tell-kernel", str(disk)],
                   input=b"label: gpt\nsize=20MiB, type=L\nsize=8MiB, type=L\nsize=50MiB, type=L\n"
                         b"size=16MiB, type=U\n", check=True)
    table = json.loads(subprocess.run(["sfdisk", "--json", str(disk)], capture_output=True, check=True).stdout)
    starts = [p["start"] * 512 for p in table["partitiontable"]["partitions"]]
    _dd(luks, disk, starts[0])
    _dd(disks.get("bare"), disk, starts[2])
    fat = tmp_path / "fat.img"
    with open(fat, "wb") as f:
        f.truncate(16 * MIB)
    subprocess.run(["mkfs.vfat", str(fat)], check=True, capture_output=True)
    _dd(fat, disk, starts[3])
    doc = inspect_json(disk)
    parts = {p["id"]: p for p in doc["partitions"]}
    assert parts["p1"]["fstype"] == "crypto_LUKS"
    assert parts["p2"]["fstype"] is None
    assert parts["p4"]["fstype"] == "vfat"
    assert doc["root"] == "p3"
    out = vm2c("inspect", disk, check=True).stdout
    assert "p1: encrypted (LUKS): not opened" in out
    assert "p2: no filesystem recognised" in out
    assert "p4: vfat: this kernel cannot mount it" in out or "p4: vfat: not a Linux root candidate" in out


def test_image_names_that_tools_would_parse_are_passed_whole(disks, tmp_path, no_leaks):
    """qemu-storage-daemon takes key=value,... options, where a comma ends the value (a comma in
    the path made the FUSE view fail, and vm2c fell back to a full raw copy); mtools splits
    FILE@@OFFSET at the first "@@" (the FAT partition could not be read at all)."""
    img = tmp_path / "vm,2024,locking=off.qcow2"
    img.write_bytes(disks.get("demo", "qcow2").read_bytes())
    human = vm2c("inspect", "--engine", "kernel", img, check=True).stdout
    assert "Read through: fuse (" in human and "failed" not in human, human
    vm2c("archive", img, "-o", tmp_path / "out", check=True)
    assert (tmp_path / "out" / "img.tar").stat().st_size > 1 << 20
    raw = tmp_path / "vm@@2024.raw"
    subprocess.run(["cp", "--sparse=always", disks.get("demo"), raw], check=True)
    plan = vm2c("archive", raw, "-o", tmp_path / "raw", "--dry-run", check=True).stdout
    link = next(line.split()[-1] for line in plan.splitlines() if line.startswith(f"ln -s {raw} "))
    assert f"mcopy -s -p -m -n -i {link}@@" in plan
    proc = vm2c("archive", raw, "-o", tmp_path / "raw", "--preset", "none", check=True)
    assert "mounted p1 at /boot/efi (vfat, via mtools)" in proc.stderr
    with tarfile.open(tmp_path / "raw" / "img.tar") as tf:
        assert tf.getmember("./boot/efi/EFI/BOOT/BOOTX64.EFI").size > 0


def test_vmdk_extent_outside_its_directory_is_refused(disks, tmp_path):
    src = tmp_path / "a"
    src.mkdir()
    other = tmp_path / "elsewhere"
    other.mkdir()
    desc = src / "disk.vmdk"
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "vmdk", "-o", "subformat=monolithicFlat",
                    disks.get("bare"), desc], check=True)
    flat = src / "disk-flat.vmdk"
    moved = other / "disk-flat.vmdk"
    flat.rename(moved)
    text = desc.read_text().replace('"disk-flat.vmdk"', f'"{moved}"')
    desc.write_text(text)
    proc = vm2c("inspect", desc)
    assert proc.returncode == 2 and "lies outside" in proc.stderr and "refusing" in proc.stderr


def test_lv_grown_into_two_segments(disks, tmp_path, no_leaks):
    """`lvextend` after another LV leaves the LV in two pieces. The user-space engine reads
    them joined in place; the kernel route, with no device-mapper here, through a joined
    sparse copy. Both tars match the tree entry by entry, with a 24 MiB file whose blocks
    cross from one piece to the other, and the image is not written to."""
    src = disks.get("extended")
    before = fingerprint(src)
    trees = disks.trees("extended")
    expected = tree_manifest({"/": trees / "root"})
    doc = validated("inspect", json.loads(vm2c("inspect", "--json", "--engine", "kernel", src, check=True).stdout))
    assert doc["root"] == "grownvg/root"
    human = vm2c("inspect", src, "--engine", "kernel", check=True).stdout
    assert "grownvg/root: in 2 pieces on the disk (grown with lvextend): the kernel route reads a joined" in human
    vm2c("archive", src, "--engine", "kernel", "-o", tmp_path / "k", "--preset", "none", "--no-sanitize", check=True)
    kernel = tar_manifest(tmp_path / "k" / "img.tar")
    assert compare(expected, kernel, ignore=lambda p: os.path.basename(p) == b"lost+found") == []
    assert kernel[b"./srv/across.bin"]["size"] == 24 << 20

    doc = validated("inspect", json.loads(vm2c("inspect", "--json", "--engine", "userspace", src, check=True).stdout))
    assert doc["root"] == "grownvg/root"
    out = tmp_path / "u"
    plan = vm2c("archive", src, "--engine", "userspace", "-o", out, "--dry-run", check=True).stdout
    assert "| dmsetup create --readonly vm2c-grownvg-root" in plan and "--sizelimit" not in plan
    vm2c("archive", src, "--engine", "userspace", "-o", out, "--preset", "none", "--no-sanitize", check=True)
    got = tar_manifest(out / "img.tar")
    assert compare(expected, got, ignore=lambda p: os.path.basename(p) == b"lost+found") == []
    assert got[b"./srv/across.bin"]["size"] == 24 << 20
    assert fingerprint(src) == before

    # auto, as root: the image is read in user space, and inspect says why
    auto = vm2c("archive", src, "-o", tmp_path / "a", "--preset", "none", "--no-sanitize", check=True)
    assert "grownvg/root at / (ext4, via user space)" in auto.stderr
    assert tar_manifest(tmp_path / "a" / "img.tar") == got
    assert "(grown with lvextend, or across disks): read in user space, in place" in vm2c("inspect", src, check=True).stdout


def test_the_kernel_route_copies_an_lv_in_pieces_once(disks, tmp_path, monkeypatch, no_leaks):
    """On the kernel route, inspect looks inside an LV in pieces through a joined copy, and the
    mount reads that same copy rather than making a second one (a copy costs what the LV
    holds). A copy the plan does not need is removed as soon as the plan is known."""
    from vm2c_tui.convert.conversion import Conversion, Options

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the session's temp dirs, to look at
    with Conversion(disks.get("extended"), Options(engine="kernel", preset="none", sanitize=False)) as conv:
        conv.inspect()
        copies = list(tmp_path.glob("vm2c-join-*/lv.raw"))
        assert len(copies) == 1
        made = copies[0].stat().st_mtime_ns
        conv.plan()
        prep = conv.prepare()
        assert list(tmp_path.glob("vm2c-join-*/lv.raw")) == copies and copies[0].stat().st_mtime_ns == made
        backing = {Path(f).read_text().strip() for f in Path("/sys/block").glob("loop*/loop/backing_file")}
        assert str(copies[0]) in backing
        assert (prep.tree.path / "srv/across.bin").stat().st_size == 24 << 20
    assert not copies[0].exists()

    # the other LV as the root: the plan leaves the one in pieces out, and its copy goes
    with Conversion(disks.get("extended"), Options(engine="kernel", root="grownvg/data")) as conv:
        conv.inspect()
        [copy] = tmp_path.glob("vm2c-join-*/lv.raw")
        assert [p.fs_id for p in conv.plan()] == ["grownvg/data"]
        assert not copy.exists()


def test_an_lv_in_pieces_without_room_for_its_copy_is_refused(disks, tmp_path, no_leaks):
    """The kernel route's joined copy needs the LV's data in TMPDIR: a 16 MiB one is refused in
    one line that says how much and where, before anything is copied."""
    small = tmp_path / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m,mode=0700", "tmpfs", small], check=True)
    try:
        proc = vm2c("archive", disks.get("extended"), "--engine", "kernel", "--root", "grownvg/root",
                    "-o", tmp_path / "out", env={**os.environ, "TMPDIR": str(small)})
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
        line = proc.stderr.strip().splitlines()[-1]
        assert "grownvg/root is in 2 pieces" in line and f"{small} has" in line and "TMPDIR" in line, line
        assert list(small.iterdir()) == []
    finally:
        subprocess.run(["umount", small], check=True)
