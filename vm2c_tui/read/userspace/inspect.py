"""inspect in user space: the same Inspection as the kernel route, from our own
table, signature and LVM readers and the filesystems read without mounting."""

from __future__ import annotations

import contextlib
import os

from vm2c_tui.errors import Vm2cError
from vm2c_tui.inspect.guestinfo import read_facts
from vm2c_tui.inspect.model import Inspection
from vm2c_tui.inspect.partitions import read_table
from vm2c_tui.inspect.root import btrfs_subvol_root, conclude, remember
from vm2c_tui.inspect.scan import LINUX_FS, Progress, identify_noting, naming, scan_disks
from vm2c_tui.inspect.signatures import probe
from vm2c_tui.read.userspace.guest import ReaderRoot
from vm2c_tui.read.userspace.readers import open_reader
from vm2c_tui.source.diskimage import Slice, open_image, volume_disk
from vm2c_tui.source.diskset import as_one

WHY = "read in user space: no root, nbd, FUSE or mount needed"


class DiskReader:
    def __init__(self, disk):
        self.disk = disk

    def table(self, warnings: list[str]):
        return read_table(self.disk, warnings)

    def probe(self, offset: int, size: int):
        return probe(self.disk, offset, size)

    def open(self):
        return contextlib.nullcontext(Slice(self.disk, 0, self.disk.size))


def inspect_userspace(path: str | os.PathLike | list, *, look_inside: bool = True,
                      progress: Progress | None = None, snapshot: str = "") -> Inspection:
    """PATH: a disk image, or a VM's disks (a list) read as one machine (source/diskset.py)."""
    from vm2c_tui.read.userspace import require

    require()
    note = progress or (lambda msg: None)
    found = [identify_noting(p, note, snapshot) for p in (path if isinstance(path, list) else [path])]
    infos, warnings = [i for i, _ in found], [w for _, ws in found for w in ws]
    images = []
    try:
        images += [open_image(info) for info in infos]
    except BaseException:
        for d in images:
            d.close()
        raise
    disk = as_one(images)
    try:
        with naming(infos[0].path):
            insp = scan_disks(infos, [DiskReader(d) for d in images], disk, warnings, note, "userspace", WHY)
            if look_inside:
                for vol in insp.filesystems():
                    if vol.fstype in LINUX_FS and vol.readable:
                        note(f"reading {vol.id} in user space")
                        _look(disk, vol)
    finally:
        disk.close()
    return conclude(insp, look_inside)


def _look(disk, vol) -> None:
    try:
        on, at = volume_disk(disk, vol.offset, vol.extents)
        reader = open_reader(on, vol.fstype, at, vol.size)
        facts = btrfs_subvol_root(vol, read_facts(ReaderRoot(reader)),
                                  lambda name: ReaderRoot(open_reader(on, "btrfs", at, vol.size, name)))
    except Vm2cError as exc:
        vol.note = f"could not be read in user space: {exc.message}"
        return
    except Exception as exc:  # a parser tripping over a damaged filesystem: say so, go on
        vol.note = f"could not be read in user space: {type(exc).__name__}: {exc}"
        return
    remember(vol, facts)
