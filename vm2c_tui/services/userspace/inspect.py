"""inspect in user space: the same Inspection as the kernel route, from our own
table, signature and LVM readers and the filesystems read without mounting."""

from __future__ import annotations

import contextlib
import os

from ...errors import Vm2cError
from ..guestinfo import read_facts
from ..inspect import BTRFS_ROOT_SUBVOLS, LINUX_FS, Progress, conclude, identify_noting, naming, remember, scan
from ..model import Inspection
from .guest import ReaderRoot
from .images import Slice, open_image, volume_disk
from .partitions import read_table
from .readers import open_reader
from .signatures import probe

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


def inspect_userspace(path: str | os.PathLike, *, look_inside: bool = True,
                      progress: Progress | None = None) -> Inspection:
    from . import require

    require()
    note = progress or (lambda msg: None)
    info, warnings = identify_noting(path, note)
    disk = open_image(info)
    try:
        with naming(info.path):
            insp = scan(info, DiskReader(disk), warnings, note, "userspace", WHY)
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
        facts = read_facts(ReaderRoot(reader))
        if vol.fstype == "btrfs" and facts.score < 4:
            for name in BTRFS_ROOT_SUBVOLS:
                if name + "/" not in facts.top:
                    continue
                sub = read_facts(ReaderRoot(open_reader(on, "btrfs", at, vol.size, name)))
                if sub.score >= 4:
                    vol.subvol, facts = name, sub
                    break
    except Vm2cError as exc:
        vol.note = f"could not be read in user space: {exc.message}"
        return
    except Exception as exc:  # a parser tripping over a damaged filesystem: say so, go on
        vol.note = f"could not be read in user space: {type(exc).__name__}: {exc}"
        return
    remember(vol, facts)
