"""Inspect through the kernel route: the raw view's table and signatures with sfdisk and blkid,
then each Linux filesystem mounted read-only for a moment (or read with debugfs without root)
to read its os-release and fstab.
"""

from __future__ import annotations

import os

from vm2c_tui.errors import Vm2cError
from vm2c_tui.host.run import which
from vm2c_tui.host.session import Session
from vm2c_tui.host.system import can_mount, is_root
from vm2c_tui.inspect.guestinfo import read_facts
from vm2c_tui.inspect.guestpath import GuestRoot
from vm2c_tui.inspect.model import Inspection, Volume
from vm2c_tui.inspect.probe import probe
from vm2c_tui.inspect.root import btrfs_subvol_root, conclude, remember
from vm2c_tui.inspect.scan import LINUX_FS, Progress, identify_noting, naming, scan_disks
from vm2c_tui.inspect.table import read_table
from vm2c_tui.read.kernel.attach import Views, loop_device, open_raw
from vm2c_tui.read.kernel.debugfs import DebugfsRoot
from vm2c_tui.read.kernel.joincopy import JoinedCopies, volume_file
from vm2c_tui.read.kernel.mount import mount_ro
from vm2c_tui.source.diskimage import RawDisk
from vm2c_tui.source.diskset import as_one


def inspect_image(path: str | os.PathLike | list, *, look_inside: bool = True, method: str | None = None,
                  progress: Progress | None = None, join_pieces: bool = True,
                  joined: JoinedCopies | None = None, snapshot: str = "") -> Inspection:
    """PATH: a disk image, or a VM's disks (a list) read as one machine. JOIN_PIECES=False
    leaves LVs in pieces unlooked-into (no joined copy): for a caller that will read the image
    in user space when it holds one. JOINED keeps the joined copies for a conversion that mounts
    them next; without it each is removed once looked into."""
    note = progress or (lambda msg: None)
    paths = path if isinstance(path, list) else [path]
    found = [identify_noting(p, note, snapshot) for p in paths]
    infos, warnings = [i for i, _ in found], [w for _, ws in found for w in ws]
    if not is_root():
        warnings.append("not running as root: only ext2/3/4 filesystems were read (with debugfs); "
                        "xfs and btrfs need root to be mounted")
    with naming(infos[0].path), Session("inspect", str(infos[0].path)) as session:
        raw = [open_raw(session, info, method) for info in infos]
        views = Views.of(raw, [i.virtual_size for i in infos])
        readers = [ToolReader(v.path, i.virtual_size) for v, i in zip(raw, infos)]
        whole = as_one([RawDisk(v.path, i.virtual_size) for v, i in zip(raw, infos)])
        session.callback(whole.close)
        insp = scan_disks(infos, readers, whole, warnings, note, raw[0].method, raw[0].why)
        if look_inside:
            _look_inside(session, views, insp, note, join_pieces, joined)
    return conclude(insp, look_inside)


class ToolReader:
    """Tables, signatures and LVM labels read with sfdisk and blkid from a raw view's path."""

    def __init__(self, path: str, size: int):
        self.path, self.size = path, size

    def table(self, warnings: list[str]):
        return read_table(self.path, self.size, warnings)

    def probe(self, offset: int, size: int):
        return probe(self.path, offset, size)

    def open(self):
        return open(self.path, "rb")


def _look_inside(session: Session, views: Views, insp: Inspection, note: Progress, join_pieces: bool,
                 joined: JoinedCopies | None) -> None:
    def where(peek: Session, vol: Volume) -> tuple[str, int]:
        if joined:  # kept for the conversion's mount
            return joined.file(views, vol.id, vol.offset, vol.extents, note)
        return volume_file(peek, views, vol.id, vol.offset, vol.extents, note)

    for vol in insp.filesystems():
        if vol.fstype not in LINUX_FS or not vol.readable or (vol.extents and not join_pieces):
            continue
        if not is_root() or not can_mount(vol.fstype):
            if vol.fstype in ("ext2", "ext3", "ext4") and which("debugfs"):
                note(f"reading {vol.id} with debugfs")
                with Session("peek", insp.source) as peek:
                    remember(vol, read_facts(DebugfsRoot(*where(peek, vol))))
            continue
        note(f"looking inside {vol.id}")
        with Session("peek", insp.source) as peek:
            try:
                src, offset = where(peek, vol)
                dev = loop_device(peek, src, offset, vol.size)
                mnt = mount_ro(peek, dev, vol.fstype, peek.tempdir("peek") / "m")
            except Vm2cError as exc:
                vol.note = f"could not be mounted: {exc}"
                continue
            top = GuestRoot(str(mnt))
            facts = btrfs_subvol_root(vol, read_facts(top), lambda name, top=top: GuestRoot(top.resolve("/" + name)))
            remember(vol, facts)
