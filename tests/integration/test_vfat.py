"""FAT shown as Linux's vfat shows it: owners and modes from the fstab's options, by both
engines. An ESP mounted umask=0077 holds files the guest saw as 0700 (vfat gives files the
execute bits unless showexec is set); both engines once archived them as 0600."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

import pytest

from vm2c_tui.read.vfat import VfatOptions, short_extension

# --- both engines on a real FAT, with attributes set by mtools ---------------------------------

ENTRIES = {"readme.txt": "", "setup.exe": "", "ro.txt": "+r", "RUN.BAT": "", "dir": "", "rodir": "+r",
           "dir/inner.txt": "", "dir/a.executable": ""}


@pytest.fixture(scope="module")
def fat_image():
    if not shutil.which("mkfs.vfat"):
        pytest.skip("dosfstools not installed")
    work = Path(tempfile.mkdtemp(prefix="vm2c-test-fat"))
    img = work / "fat.img"
    subprocess.run(["truncate", "-s", "34M", img], check=True)
    subprocess.run(["mkfs.vfat", "-F", "32", img], check=True, capture_output=True)
    env = {**os.environ, "MTOOLS_SKIP_CHECK": "1"}
    for name, attr in ENTRIES.items():
        if "." in name.rsplit("/", 1)[-1]:
            src = work / "data"
            src.write_text(name)
            subprocess.run(["mcopy", "-i", img, src, f"::/{name}"], check=True, env=env)
        else:
            subprocess.run(["mmd", "-i", img, f"::/{name}"], check=True, env=env)
        if attr:
            subprocess.run(["mattrib", "-i", img, attr, f"::/{name}"], check=True, env=env)
    yield img
    shutil.rmtree(work)


def expected(options: str) -> dict[str, int]:
    o = VfatOptions.parse(options)
    return {n: o.mode("." not in n.rsplit("/", 1)[-1], ENTRIES[n] == "+r", short_extension(n.rsplit("/", 1)[-1]))
            for n in ENTRIES}


def kernel_route(img: Path, options: str) -> dict[str, tuple[int, int, int]]:
    from vm2c_tui.host.session import Session
    from vm2c_tui.plan.mounts import MountPlan
    from vm2c_tui.read.kernel.assemble import _mtools_copy

    plan = MountPlan("p1", "/boot/efi", "vfat", 0, img.stat().st_size, "mtools", options=options)
    with Session("test") as session:
        stage = _mtools_copy(session, str(img), 0, plan)
        return {n: _mode_owner(stage / n) for n in ENTRIES}


def user_space(img: Path, options: str) -> dict[str, tuple[int, int, int]]:
    from vm2c_tui.read.userspace.fs_fat import FatReader
    from vm2c_tui.source.diskimage import RawDisk

    disk = RawDisk(str(img))
    try:
        reader = FatReader(disk, 0, disk.size, options)
        out = {}
        for name in ENTRIES:
            node = reader.root()
            for part in name.split("/"):
                node = reader.lookup(node, part.encode())
            m = reader.meta(node)
            out[name] = (m.mode, m.uid, m.gid)
        return out
    finally:
        disk.close()


def _mode_owner(p: Path) -> tuple[int, int, int]:
    st = os.lstat(p)
    return stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid


@pytest.mark.parametrize("options", ["umask=0077", "", "showexec,fmask=0133", "rodir,uid=1000,gid=100,umask=0027"])
@pytest.mark.parametrize("engine", [kernel_route, user_space], ids=["kernel", "userspace"])
def test_both_engines_show_what_the_kernel_shows(fat_image, options, engine):
    if engine is kernel_route and os.geteuid() != 0:
        pytest.skip("the mtools copy chowns its entries: root")
    want = expected(options)
    o = VfatOptions.parse(options)
    got = engine(fat_image, options)
    assert got == {n: (mode, o.uid, o.gid) for n, mode in want.items()}
    if options == "umask=0077":  # the held-out ESP: 0700, not 0600
        assert got["readme.txt"][0] == got["setup.exe"][0] == 0o700


@pytest.mark.parametrize("options", ["umask=0077", "showexec,fmask=0133"])
def test_the_kernels_own_vfat_agrees_where_it_mounts(fat_image, tmp_path, options):
    """The kernel is the reference; these machines cannot mount vfat (no module), a workstation can."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "vfat", "-o", f"ro,loop,{options}", fat_image, mnt],
                                           capture_output=True).returncode != 0:
        pytest.skip("this kernel cannot mount vfat")
    try:
        assert {n: _mode_owner(mnt / n)[0] for n in ENTRIES} == expected(options)
    finally:
        subprocess.run(["umount", mnt], check=True)
