"""VMs as they really come (issue 22): a VirtualBox folder whose current state is a
differencing VDI, read with its parent by both engines, never as the stale base."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess

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
    import json

    warnings = json.loads(proc.stdout)["warnings"]
    stale = [w for w in warnings if STALE in w]
    assert stale and os.path.basename(vbox["current"]) in stale[0]


def test_child_without_its_parent_is_refused_in_one_line(vbox, tmp_path):
    lone = tmp_path / "lone.vdi"
    shutil.copy(vbox["current"], lone)
    proc = vm2c("inspect", lone)
    assert proc.returncode == 2
    assert "never read without it" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
