"""Build raw disk images from a layout with real tools, then other formats with qemu-img."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from contextlib import contextmanager
from pathlib import Path

from diskbuilder.layout import Disk, Fs, Vg

SFDISK_TYPE = {"linux": "L", "efi": "U", "lvm": "V", "swap": "S", "extended": "E"}
MIB = 1 << 20


def sh(*cmd: str, env: dict | None = None, input: bytes | None = None) -> str:
    proc = subprocess.run(cmd, capture_output=True, env=env, input=input)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {proc.stderr.decode(errors='replace').strip()}")
    return proc.stdout.decode()


@contextmanager
def loop(path: Path, offset: int = 0, size: int = 0, readonly: bool = False):
    cmd = ["losetup", "-f", "--show", "-o", str(offset)]
    if size:
        cmd += ["--sizelimit", str(size)]
    if readonly:
        cmd.append("-r")
    dev = sh(*cmd, str(path)).strip()
    try:
        yield dev
    finally:
        sh("losetup", "-d", dev)


def make_fs(fs: Fs, path: Path) -> None:
    with open(path, "wb") as f:
        f.truncate(fs.size_mib * MIB)
    tree = str(fs.tree) if fs.tree else None
    if fs.fstype in ("ext2", "ext3", "ext4"):
        cmd = ["mkfs." + fs.fstype, "-q", "-F", "-U", fs.uuid, "-E", f"hash_seed={fs.uuid}", "-I", "256"]
        if fs.label:
            cmd += ["-L", fs.label]
        if tree:
            cmd += ["-d", tree]
        sh(*cmd, str(path), env={**os.environ, "E2FSPROGS_FAKE_TIME": "981173106"})
    elif fs.fstype == "xfs":
        cmd = ["mkfs.xfs", "-q", "-f", "-m", f"uuid={fs.uuid}"]
        if fs.label:
            cmd += ["-L", fs.label]
        sh(*cmd, str(path))
        if tree:
            _copy_into_mounted(path, "xfs", Path(tree))
    elif fs.fstype == "btrfs":
        cmd = ["mkfs.btrfs", "-q", "-f", "-U", fs.uuid]
        if fs.label:
            cmd += ["-L", fs.label]
        if tree and not fs.subvols:
            cmd += ["--rootdir", tree]
        sh(*cmd, str(path))
        for name, sub_tree in (fs.subvols or {}).items():  # mkfs.btrfs 6.2 has no --subvol
            _copy_into_mounted(path, "btrfs", sub_tree, subvol=name)
    elif fs.fstype == "vfat":
        cmd = ["mkfs.vfat", "-i", fs.volume_id]
        if fs.label:
            cmd += ["-n", fs.label]
        sh(*cmd, str(path))
        if tree and any(Path(tree).iterdir()):
            sh("mcopy", "-s", "-p", "-m", "-i", str(path), *[str(p) for p in Path(tree).iterdir()], "::/")
    elif fs.fstype == "swap":
        cmd = ["mkswap", "-U", fs.uuid]
        if fs.label:
            cmd += ["-L", fs.label]
        sh(*cmd, str(path))
    else:
        raise ValueError(fs.fstype)


def _copy_into_mounted(image: Path, fstype: str, tree: Path, subvol: str = "") -> None:
    """mkfs.xfs -p loses hard links and xattrs: copy with GNU tar through a mount
    (into a new btrfs subvolume when SUBVOL is given)."""
    with loop(image) as dev, tempfile.TemporaryDirectory() as top_mnt:
        sh("mount", "-t", fstype, dev, top_mnt)
        mnt = top_mnt
        if subvol:
            sh("btrfs", "subvolume", "create", os.path.join(top_mnt, subvol))
            mnt = os.path.join(top_mnt, subvol)
        try:
            tar = ["tar", "--xattrs", "--xattrs-include=*", "--acls", "--numeric-owner"]
            data = subprocess.run([*tar, "-C", str(tree), "-cf", "-", "."], capture_output=True, check=True).stdout
            sh(*tar, "-C", mnt, "-xpf", "-", input=data)
            top = tree.stat()
            os.chmod(mnt, top.st_mode & 0o7777)
            os.utime(mnt, (top.st_mtime, top.st_mtime))
        finally:
            sh("umount", top_mnt)


def _dd(src: Path, dest: Path, offset: int, skip: int = 0, count: int = 0) -> None:
    """SRC (or COUNT bytes of it from SKIP) into DEST at OFFSET, holes kept."""
    part = [f"skip={skip}", f"count={count}", "iflag=skip_bytes,count_bytes"] if count else []
    sh("dd", f"if={src}", f"of={dest}", "bs=1M", f"seek={offset}", "oflag=seek_bytes", *part,
       "conv=notrunc,sparse", "status=none")


def _partition(disk: Disk, path: Path) -> list[dict]:
    lines = [f"label: {disk.table}"]
    if disk.table == "gpt":
        lines.append("first-lba: 2048")
    for p in disk.parts:
        size = f"size={p.size_mib}MiB, " if p.kind != "extended" else ""
        lines.append(f"{size}type={SFDISK_TYPE[p.kind]}")
    sh("sfdisk", "-q", "--no-reread", "--no-tell-kernel", str(path), input="\n".join(lines).encode() + b"\n")
    table = json.loads(sh("sfdisk", "--json", str(path)))["partitiontable"]
    return table["partitions"]


def _lvm_env(tmp: Path, dev: str) -> dict:
    conf = tmp / "lvm.conf"
    conf.write_text(
        "devices { filter = [ \"a|^%s$|\", \"r|.*|\" ] use_devicesfile = 0 obtain_device_list_from_udev = 0 }\n"
        "backup { backup = 0 archive = 0 }\n"
        "activation { udev_sync = 0 udev_rules = 0 monitoring = 0 }\n"
        "global { use_lvmpolld = 0 }\n" % dev
    )
    return {**os.environ, "LVM_SYSTEM_DIR": str(tmp), "LVM_SUPPRESS_FD_WARNINGS": "1"}


def _fill_vg(vg: Vg, disk_path: Path, part_off: int, part_size: int, tmp: Path) -> None:
    with loop(disk_path, part_off, part_size) as dev:
        env = _lvm_env(tmp, dev)
        sh("lvm", "pvcreate", "-q", "-y", dev, env=env)
        sh("lvm", "vgcreate", "-q", "-s", "4M", vg.name, dev, env=env)
        for lv in vg.lvs:
            sh("lvm", "lvcreate", "-q", "--driverloaded", "n", "--activate", "n", "--zero", "n",
               "-W", "n", "-n", lv.name, "-L", f"{lv.fs.size_mib - lv.grow_mib}M", vg.name, env=env)
        for lv in vg.lvs:
            if lv.grow_mib:
                sh("lvm", "lvextend", "-q", "--driverloaded", "n", "-L", f"+{lv.grow_mib}M",
                   f"{vg.name}/{lv.name}", env=env)
        pe_start = int(sh("lvm", "pvs", "--noheadings", "--units", "b", "--nosuffix", "-o", "pe_start", dev, env=env))
        extent = int(sh("lvm", "vgs", "--noheadings", "--units", "b", "--nosuffix", "-o", "vg_extent_size",
                        vg.name, env=env))
        rows = sh("lvm", "lvs", "--noheadings", "--units", "b", "--nosuffix", "-o", "lv_name,seg_start,seg_pe_ranges",
                  vg.name, env=env)
    segments: dict[str, list[tuple[int, int]]] = {}  # LV -> (disk offset, length) in LV order
    for row in sorted((r.split() for r in rows.split("\n") if r.strip()), key=lambda r: (r[0], int(r[1]))):
        if row:
            name, _, rng = row
            first, last = (int(x) for x in rng.rsplit(":", 1)[1].split("-"))
            segments.setdefault(name, []).append((part_off + pe_start + first * extent,
                                                  (last - first + 1) * extent))
    for lv in vg.lvs:
        img = tmp / f"lv-{lv.name}.img"
        make_fs(lv.fs, img)
        pos = 0
        for off, length in segments[lv.name]:
            _dd(img, disk_path, off, pos, length)
            pos += length
        img.unlink()


def build_raw(disk: Disk, path: Path) -> Path:
    """Write DISK as a raw image at PATH (sparse)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        path.unlink()
    with tempfile.TemporaryDirectory(prefix="vm2c-build-") as t:
        tmp = Path(t)
        if disk.table == "none":
            fs = disk.parts[0].content
            assert isinstance(fs, Fs)
            make_fs(fs, path)
            return path
        with open(path, "wb") as f:
            f.truncate(disk.total_mib() * MIB)
        entries = _partition(disk, path)
        for part, entry in zip(disk.parts, entries, strict=True):
            off, size = entry["start"] * 512, entry["size"] * 512
            if isinstance(part.content, Fs):
                img = tmp / "part.img"
                make_fs(part.content, img)
                _dd(img, path, off)
                img.unlink()
            elif isinstance(part.content, Vg):
                _fill_vg(part.content, path, off, size, tmp)
    return path


def convert(raw: Path, fmt: str, dest: Path, *options: str) -> Path:
    """qemu-img convert RAW to FMT (vdi, vmdk, qcow2, vpc, vhdx)."""
    if dest.exists():
        dest.unlink()
    sh("qemu-img", "convert", "-f", "raw", "-O", fmt, *options, str(raw), str(dest))
    return dest


def overlay(base: Path, base_fmt: str, dest: Path) -> Path:
    """A qcow2 overlay whose backing file is BASE (relative, as hypervisors write them)."""
    if dest.exists():
        dest.unlink()
    sh("qemu-img", "create", "-q", "-f", "qcow2", "-b", base.name, "-F", base_fmt, str(dest))
    return dest


def copy_sparse(src: Path, dest: Path) -> None:
    sh("cp", "--sparse=always", str(src), str(dest))
