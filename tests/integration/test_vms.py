"""VMs as they really come (issue 22): a VirtualBox folder whose current state is a
differencing VDI, read with its parent by both engines, never as the stale base."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tarfile

import pytest
import vmfixtures
from conftest import CACHE, vm2c
from manifest import compare, tar_manifest, tree_manifest
from test_archive import _ignore_mkfs_and_wh

from diskbuilder import builder_key
from vm2c_tui.source.diskimage import open_image
from vm2c_tui.source.identify import identify
from vm2c_tui.source.vdichain import STALE

DEMO_MOUNTS = {"/": "root", "/boot": "boot"}


@pytest.fixture(scope="module")
def vbox(disks):
    return vmfixtures.virtualbox(disks, CACHE / builder_key())


def _sha_of(disk) -> str:
    h, pos = hashlib.sha256(), 0
    while pos < disk.size:
        h.update(disk.pread(1 << 22, pos))
        pos += 1 << 22
    return h.hexdigest()


def test_differencing_vdi_reads_as_the_current_state(vbox):
    """Byte for byte the disk the guest last wrote: changed blocks from the child (stored
    shuffled), unchanged ones from the parent, zeroed ones as zeros."""
    qemu = subprocess.run(["qemu-img", "info", str(vbox["current"])], capture_output=True, text=True)
    assert "non-NULL link UUID" in qemu.stderr  # why vm2c reads these itself
    info = identify(vbox["current"])
    assert info.subformat == "differencing" and info.backing_chain == [str(vbox["base"])]
    disk = open_image(info)
    try:
        with open(vbox["after_raw"], "rb") as f:
            assert _sha_of(disk) == hashlib.file_digest(f, "sha256").hexdigest()
    finally:
        disk.close()
    auto = json.loads(vm2c("inspect", vbox["current"], "--json", check=True).stdout)  # 3x faster in place
    assert any("differencing VDI" in w and "read in user space" in w for w in auto["warnings"])
    dry = vm2c("archive", vbox["current"], "-o", "/nonexistent/out", "--engine", "kernel", "--dry-run", check=True)
    assert "raw view: flatten" in dry.stdout and "own VDI reader copies" in dry.stdout


@pytest.mark.parametrize("engine", ["kernel", "userspace"])
@pytest.mark.parametrize("source", ["vbox", "current"])
def test_vm_archive_is_the_current_state(vbox, engine, source, tmp_path, no_leaks):
    out = tmp_path / "out"
    before = [os.stat(p).st_mtime_ns for p in (vbox["base"], vbox["current"])]
    vm2c("archive", vbox[source], "-o", out, "--engine", engine, "--preset", "none", "--no-sanitize", check=True)
    got = tar_manifest(out / "img.tar")
    expected = tree_manifest({mp: vbox["trees"] / d for mp, d in DEMO_MOUNTS.items()})
    assert compare(expected, got, ignore=_ignore_mkfs_and_wh) == []
    assert b"./" + vmfixtures.AFTER_FILE.encode() in got
    assert b"./" + vmfixtures.GONE_FILE.encode() not in got
    assert [os.stat(p).st_mtime_ns for p in (vbox["base"], vbox["current"])] == before


def test_base_with_children_warns_and_names_the_current_image(vbox):
    proc = vm2c("inspect", vbox["base"], "--json", check=True)
    warnings = json.loads(proc.stdout)["warnings"]
    stale = [w for w in warnings if STALE in w]
    assert stale and os.path.basename(vbox["current"]) in stale[0]


def test_child_without_its_parent_is_refused_in_one_line(vbox, tmp_path):
    lone = tmp_path / "lone.vdi"
    shutil.copy(vbox["current"], lone)
    proc = vm2c("inspect", lone)
    assert proc.returncode == 2
    assert "never read without it" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


@pytest.fixture(scope="module")
def vmware(disks):
    return vmfixtures.vmware(disks, CACHE / builder_key())


@pytest.fixture(scope="module")
def ova(disks):
    return vmfixtures.ova(disks, CACHE / builder_key())


def _archived(src, out, engine, *extra) -> dict:
    vm2c("archive", src, "-o", out, "--engine", engine, "--preset", "none", "--no-sanitize", *extra, check=True)
    return tar_manifest(out / "img.tar")


@pytest.mark.parametrize("engine", ["kernel", "userspace"])
def test_vmware_folder_is_read_at_its_newest_delta(vmware, engine, tmp_path, no_leaks):
    got = _archived(vmware["vmx"].parent, tmp_path / "out", engine)
    expected = tree_manifest({mp: vmware["trees"] / d for mp, d in DEMO_MOUNTS.items()})
    assert compare(expected, got, ignore=_ignore_mkfs_and_wh) == []
    proc = vm2c("inspect", vmware["vmx"], "--json", check=True)
    doc = json.loads(proc.stdout)
    assert doc["machine"]["kind"] == "vmx" and doc["backing_chain"] == [str(vmware["base"])]
    assert [d["slot"] for d in doc["disks"]] == ["scsi0:0"]  # the CD-ROM is no disk
    assert [s["name"] for s in doc["snapshots"]] == ["before upgrade"]


@pytest.mark.parametrize("engine", ["kernel", "userspace"])
def test_ova_is_read_from_its_stream_vmdk(ova, engine, tmp_path, no_leaks):
    got = _archived(ova["ova"], tmp_path / "out", engine)
    expected = tree_manifest({mp: ova["trees"] / d for mp, d in DEMO_MOUNTS.items()})
    assert compare(expected, got, ignore=_ignore_mkfs_and_wh) == []


def _hostile_ova(tmp_path, member) -> str:

    from diskbuilder import vms

    dest = tmp_path / "bad.ova"
    vms.ova(dest, tmp_path / "tiny.vmdk", 1 << 20, extra=[member])
    return vm2c("inspect", dest)


@pytest.mark.parametrize("kind", ["dotdot", "absolute", "symlink", "hardlink"])
def test_ova_with_a_hostile_member_is_refused(kind, tmp_path, no_leaks):
    subprocess.run(["qemu-img", "create", "-q", "-f", "vmdk", str(tmp_path / "tiny.vmdk"), "1M"], check=True)
    m = tarfile.TarInfo({"dotdot": "../../etc/cron.d/x", "absolute": "/etc/cron.d/x", "symlink": "link.vmdk",
                         "hardlink": "hard.vmdk"}[kind])
    if kind == "symlink":
        m.type, m.linkname = tarfile.SYMTYPE, "/dev/sda"
    elif kind == "hardlink":
        m.type, m.linkname = tarfile.LNKTYPE, "/etc/shadow"
    else:
        m.size = 4
    proc = _hostile_ova(tmp_path, m)
    assert proc.returncode == 2 and "refusing the OVA" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_hyperv_checkpoint_is_refused_not_read_alone(tmp_path):
    """An .avhdx is a VHDX whose File Parameters say HasParent: refused in one line (qemu's
    vhdx driver has no parent support), never read as a standalone disk."""
    import struct

    from vm2c_tui.source.subformats import VHDX_FILE_PARAMETERS, VHDX_METADATA

    img = tmp_path / "disk.avhdx"
    subprocess.run(["qemu-img", "create", "-q", "-f", "vhdx", str(img), "64M"], check=True)
    with open(img, "r+b") as f:  # set HasParent (bit 1) in the metadata region's File Parameters
        f.seek(192 * 1024)
        table = f.read(64 * 1024)
        count, = struct.unpack_from("<I", table, 8)
        meta_off = next(struct.unpack_from("<16sQ", table, 16 + 32 * i)[1] for i in range(count)
                        if table[16 + 32 * i:32 + 32 * i] == VHDX_METADATA)
        f.seek(meta_off)
        meta = f.read(64 * 1024)
        n, = struct.unpack_from("<H", meta, 10)
        item_off = next(struct.unpack_from("<16sI", meta, 32 + 32 * j)[1] for j in range(n)
                        if meta[32 + 32 * j:48 + 32 * j] == VHDX_FILE_PARAMETERS)
        f.seek(meta_off + item_off + 4)
        flags, = struct.unpack("<I", f.read(4))
        f.seek(meta_off + item_off + 4)
        f.write(struct.pack("<I", flags | 2))
    proc = vm2c("inspect", img)
    assert proc.returncode == 2 and "Hyper-V checkpoint" in proc.stderr and "merge" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_qcow2_internal_snapshots_are_listed(disks, tmp_path):
    img = tmp_path / "snap.qcow2"
    shutil.copy(disks.get("demo", "qcow2"), img)
    subprocess.run(["qemu-img", "snapshot", "-c", "before-upgrade", str(img)], check=True)
    doc = json.loads(vm2c("inspect", img, "--json", check=True).stdout)
    assert [s["name"] for s in doc["snapshots"]] == ["before-upgrade"]
    assert any("internal snapshot" in w for w in doc["warnings"])
    assert doc["machine"] is None and doc["disks"][0]["path"] == str(img)


def test_libvirt_domain_paths_stay_in_its_folder(disks, tmp_path):
    """A domain names host paths; vm2c reads a disk only inside the XML's folder (or a
    --trust-dir), or copied beside it, and refuses the rest in one line."""
    src = disks.get("demo", "qcow2")
    xml = tmp_path / "web.xml"
    xml.write_text(f"""<domain type='kvm'><name>web</name><devices>
      <disk type='file' device='disk'><driver name='qemu' type='qcow2'/>
        <source file='{src}'/><target dev='vda' bus='virtio'/></disk>
      <disk type='file' device='cdrom'><source file='/isos/x.iso'/><target dev='sda'/></disk>
    </devices></domain>""")
    proc = vm2c("inspect", xml)
    assert proc.returncode == 2 and "outside the VM's folder" in proc.stderr and "--trust-dir" in proc.stderr
    shutil.copy(src, tmp_path / src.name)  # copied beside the definition, as an operator would
    doc = json.loads(vm2c("inspect", xml, "--json", check=True).stdout)
    assert doc["machine"]["name"] == "web" and doc["disks"] == [{"id": "d1", "slot": "vda",
                                                                 "path": str(tmp_path / src.name)}]
    trusted = json.loads(vm2c("--trust-dir", str(src.parent), "inspect", xml, "--json", check=True).stdout)
    assert trusted["disks"][0]["path"] in (str(src), str(tmp_path / src.name))


def test_entity_expansion_in_a_definition_is_refused(tmp_path):
    vbox = tmp_path / "bomb.vbox"
    vbox.write_text('<?xml version="1.0"?><!DOCTYPE v [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]>'
                    '<VirtualBox><Machine name="&b;"/></VirtualBox>')
    proc = vm2c("inspect", vbox)
    assert proc.returncode == 2 and "refusing XML" in proc.stderr


@pytest.fixture(scope="module")
def two_disks(disks):
    return vmfixtures.two_disks(disks, CACHE / builder_key())


TWO_MOUNTS = {"/": "root", "/srv": "srv", "/var": "var"}


@pytest.mark.parametrize("engine", ["kernel", "userspace"])
def test_two_disk_vm_is_read_as_one_machine(two_disks, engine, tmp_path, no_leaks):
    """/srv on the second disk, /var an LV linear across PVs on both: placed from the fstab."""
    doc = json.loads(vm2c("inspect", two_disks["xml"], "--engine", engine, "--json", check=True).stdout)
    ids = {v["id"] for p in doc["partitions"] for v in [p, *p["volumes"]]}
    assert {"d1/p1", "d1/p2", "d2/p1", "d2/p2"} <= ids and any(i.endswith("/data/var") for i in ids)
    assert [d["slot"] for d in doc["disks"]] == ["vda", "vdb"] and doc["root"] == "d1/p1"
    got = _archived(two_disks["xml"], tmp_path / "out", engine)
    expected = tree_manifest({mp: two_disks["trees"] / d for mp, d in TWO_MOUNTS.items()})
    assert compare(expected, got, ignore=_ignore_mkfs_and_wh) == []


def test_several_disk_files_given_together(two_disks, tmp_path):
    doc = json.loads(vm2c("inspect", two_disks["vda"], two_disks["vdb"], "--json", check=True).stdout)
    assert doc["machine"]["kind"] == "disks" and len(doc["disks"]) == 2
    lone = json.loads(vm2c("inspect", two_disks["vda"], "--json", check=True).stdout)
    var = next(v for p in lone["partitions"] for v in p["volumes"] if v["id"] == "data/var")
    assert var["fstype"] is None  # half a VG: not read, and the note names the missing PV
    text = vm2c("inspect", two_disks["vda"], check=True).stdout
    assert "a PV of its VG is not on the disks read" in text and "not on this disk" in text


def test_qcow2_internal_snapshot_is_read_when_named(vbox, tmp_path, no_leaks):
    """--snapshot NAME on a qcow2 reads that internal snapshot (qemu-img convert -l on the
    kernel route); without it, the current state; the user-space engine refuses in one line."""
    img = tmp_path / "vm.qcow2"
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(vbox["base_raw"]), str(img)], check=True)
    subprocess.run(["qemu-img", "snapshot", "-c", "before", str(img)], check=True)
    subprocess.run(["qemu-img", "convert", "-n", "-f", "raw", "-O", "qcow2", str(vbox["after_raw"]), str(img)],
                   check=True)
    after, gone = b"./" + vmfixtures.AFTER_FILE.encode(), b"./" + vmfixtures.GONE_FILE.encode()
    now = _archived(img, tmp_path / "now", "kernel")
    then = _archived(img, tmp_path / "then", "kernel", "--snapshot", "before")
    assert after in now and gone not in now
    assert after not in then and gone in then
    proc = vm2c("inspect", img, "--engine", "userspace", "--snapshot", "before")
    assert proc.returncode == 2 and "--engine kernel" in proc.stderr
    assert "no internal snapshot named 'nope'" in vm2c("inspect", img, "--snapshot", "nope").stderr
