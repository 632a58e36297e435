"""Look inside a disk image without changing it: format, table, LVM, filesystems, root.

Reads metadata only (sfdisk, blkid, LVM labels), then mounts each Linux
filesystem read-only for a moment to read its os-release and fstab.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path

from ..errors import Vm2cError
from . import lvm
from .attach import RawView, loop_device, open_raw
from .debugfs import DebugfsRoot
from .formats import identify
from .guestinfo import read_facts
from .guestpath import GuestRoot
from .joincopy import JoinedCopies, volume_file
from .model import Inspection, Partition, Volume
from .mount import can_mount, is_root, mount_ro
from .probe import probe
from .resolve import resolve_fstab
from .run import which
from .session import Session
from .system import holder_warning
from .table import EXTENDED, read_table, type_name

LINUX_FS = {"ext2", "ext3", "ext4", "xfs", "btrfs"}
LISTED = {"swap": "swap", "crypto_LUKS": "encrypted (LUKS): not opened", "LVM2_member": "",
          "vfat": "", "ntfs": "", "iso9660": ""}

Progress = Callable[[str], None]


def identify_noting(path: str | os.PathLike, note: Progress):
    """The image's format, and the warnings every inspection starts with."""
    note("identifying the image format")
    info = identify(Path(path))
    warnings = list(info.warnings)
    held = holder_warning(str(info.path))
    if held:
        warnings.append(held)
    return info, warnings


def inspect_image(path: str | os.PathLike, *, look_inside: bool = True, method: str | None = None,
                  progress: Progress | None = None, join_pieces: bool = True,
                  joined: JoinedCopies | None = None) -> Inspection:
    """JOIN_PIECES=False leaves LVs in pieces unlooked-into (no joined copy): for a caller that
    will read the image in user space when it holds one. JOINED keeps the joined copies for a
    conversion that mounts them next; without it each is removed once looked into."""
    note = progress or (lambda msg: None)
    info, warnings = identify_noting(path, note)
    if not is_root():
        warnings.append("not running as root: only ext2/3/4 filesystems were read (with debugfs); "
                        "xfs and btrfs need root to be mounted")
    with naming(info.path), Session("inspect", str(info.path)) as session:
        view = open_raw(session, info, method)
        insp = scan(info, ToolReader(view.path, info.virtual_size), warnings, note, view.method, view.why)
        if look_inside:
            _look_inside(session, view, insp, note, join_pieces, joined)
    return conclude(insp, look_inside)


@contextlib.contextmanager
def naming(path):
    """An error from inside an inspection says which image it is about."""
    try:
        yield
    except Vm2cError as exc:
        if str(path) in exc.message:
            raise
        raise Vm2cError(f"{path}: {exc.message}", exit_code=exc.exit_code) from None


def conclude(insp: Inspection, look_inside: bool) -> Inspection:
    """What every inspection ends with, whichever engine read the disk: the root, the fstab targets."""
    pick_root(insp)
    resolve_fstab(insp)
    insp.looked_inside = look_inside
    return insp


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


def scan(info, reader, warnings: list[str], note: Progress, method: str = "", why: str = "") -> Inspection:
    """Table, signatures and LVM through READER (ToolReader here, the user-space engine's own)."""
    note("reading the partition table")
    label, raw_parts = reader.table(warnings)
    insp = Inspection(str(info.path), info.name, info.subformat, info.virtual_size, info.disk_size,
                      label, [], None, warnings, method, why, info.backing_chain)
    if label == "none":
        sig = reader.probe(0, info.virtual_size)
        if not sig.fstype:
            raise Vm2cError(f"{info.path}: no partition table and no filesystem found "
                            f"(not a disk image, or an unsupported one)")
        part = Partition("fs", info.virtual_size, 0, sig.fstype, sig.label, sig.uuid, number=0, start=0,
                         sectors=info.virtual_size // 512, type="whole disk")
        insp.partitions.append(part)
    _refuse_overlaps(info.path, label, raw_parts)
    for rp in raw_parts:
        part = Partition(f"p{rp.number}", rp.sectors * 512, rp.start * 512, partuuid=rp.partuuid,
                         number=rp.number, start=rp.start, sectors=rp.sectors,
                         type=type_name(label, rp.type_code), type_code=rp.type_code)
        insp.partitions.append(part)
        if label == "dos" and rp.type_code.lower() in EXTENDED:
            part.note = "extended partition: holds the logical ones"
            continue
        sig = reader.probe(part.offset, part.size)
        part.fstype, part.label, part.uuid = sig.fstype, sig.label, sig.uuid
    for part in insp.partitions:
        _classify(part)
    note("reading LVM metadata")
    _scan_lvm(reader, insp, user_space=method == "userspace")
    return insp


def _refuse_overlaps(path, label: str, parts) -> None:
    """Two partitions sharing sectors are no partition table a tool writes: one filesystem
    would be read as another's, or the same data archived twice (an MBR's extended partition
    holds its logical ones: that is no overlap)."""
    spans = [(p.start, p.start + p.sectors, p.number) for p in parts
             if p.sectors and not (label == "dos" and p.type_code.lower() in EXTENDED)]
    if clash := _overlap(spans):
        (s1, e1, n1), (s2, _e2, n2) = clash
        raise Vm2cError(f"{path}: partition table is corrupt or crafted: p{n2} (from sector {s2}) overlaps "
                        f"p{n1} (sectors {s1}-{e1 - 1})")


def _overlap(spans: list[tuple]) -> tuple | None:
    """The first two (start, end, name) spans that share anything, in start order; None if none do."""
    spans = sorted(spans)
    return next(((a, b) for a, b in zip(spans, spans[1:]) if b[0] < a[1]), None)


def _classify(v: Volume) -> None:
    if not v.fstype:
        v.note = v.note or "no filesystem recognised"
    elif v.fstype in LISTED:
        v.note = LISTED[v.fstype] or v.note
    if v.fstype and v.fstype not in LINUX_FS and v.fstype not in ("LVM2_member",) and not v.note:
        v.note = f"{v.fstype}: not a Linux root candidate"
    if v.fstype in ("vfat", "ntfs", "iso9660") and not can_mount(v.fstype):
        v.note = f"{v.fstype}: this kernel cannot mount it; read with user-space tools where possible"


def _scan_lvm(reader, insp: Inspection, user_space: bool = False) -> None:
    pvs: dict[str, Partition] = {}
    texts = []
    with reader.open() as f:
        for part in insp.partitions:
            if part.fstype != "LVM2_member":
                continue
            pv = lvm.read_pv(f, part.offset, part.size)
            if pv is None:
                part.note = "LVM signature without a readable label"
                continue
            pvs[pv.uuid] = part
            part.note = "LVM physical volume: its logical volumes are listed below"
            if pv.mda_text:
                texts.append((part, pv.mda_text))
    seen = set()
    claimed: list[tuple[int, int, str]] = []  # (start, end, LV) of every segment on this disk
    for part, text in texts:
        for lv in lvm.logical_volumes(text):
            if lv.id in seen or lv.kind == "hidden":
                continue
            seen.add(lv.id)
            vol = Volume(lv.id, lv.size)
            for s in lv.segments:
                pv = pvs.get(s.pv_uuid)
                if pv is not None and s.offset + s.length > pv.size:
                    raise Vm2cError(f"{insp.source}: LVM metadata is corrupt or crafted: LV {lv.id!r} has a "
                                    f"segment past the end of its PV {pv.id}")
                if pv is not None:
                    claimed.append((pv.offset + s.offset, pv.offset + s.offset + s.length, lv.id))
            ranges = [(pvs[s.pv_uuid].offset + s.offset, s.length) for s in lv.segments if s.pv_uuid in pvs]
            merged = _merge(ranges)
            if lv.note:
                vol.note, vol.readable = lv.note, False
            elif not merged or len(ranges) != len(lv.segments):
                vol.note = "spans several disks: needs device-mapper to be read"
                vol.readable = False
            else:
                vol.offset = merged[0][0]
                sig = reader.probe(vol.offset, merged[0][1])  # signatures sit at the start
                vol.fstype, vol.label, vol.uuid = sig.fstype, sig.label, sig.uuid
                _classify(vol)
                if len(merged) > 1:  # grown with lvextend: every piece on this disk, not next to each other
                    vol.extents = merged
                    if user_space:
                        vol.note = vol.note or f"in {len(merged)} pieces on the disk: read joined"
                    else:
                        vol.note = (f"in {len(merged)} pieces on the disk (grown with lvextend): the kernel "
                                    f"route reads a joined temporary copy")
            # the VG holding it is the partition whose metadata names it first
            owner = pvs.get(lv.segments[0].pv_uuid, part) if lv.segments else part
            owner.volumes.append(vol)
    if clash := _overlap(claimed):  # LVM never maps one extent twice: one LV would be read as another
        (_s1, _e1, a), (_s2, _e2, b) = clash
        raise Vm2cError(f"{insp.source}: LVM metadata is corrupt or crafted: LVs {a!r} and {b!r} share "
                        "extents of one PV")


def _merge(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[list[int]] = []
    for off, ln in ranges:
        if out and out[-1][0] + out[-1][1] == off:
            out[-1][1] += ln
        else:
            out.append([off, ln])
    return [(a, b) for a, b in out]


def _look_inside(session: Session, view: RawView, insp: Inspection, note: Progress, join_pieces: bool,
                 joined: JoinedCopies | None) -> None:
    def where(peek: Session, vol: Volume) -> tuple[str, int]:
        if joined:  # kept for the conversion's mount
            return joined.file(view.path, vol.id, vol.offset, vol.extents, note)
        return volume_file(peek, view.path, vol.id, vol.offset, vol.extents, note)

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
            facts = read_facts(GuestRoot(str(mnt)))
            if vol.fstype == "btrfs" and facts.score < 4:
                facts = _btrfs_subvol_root(vol, mnt, facts)
            remember(vol, facts)


BTRFS_ROOT_SUBVOLS = ("@", "@root", "@rootfs", "root")  # Ubuntu, openSUSE-style, others


def _btrfs_subvol_root(vol: Volume, mnt, facts):
    """Distributions keep the root in a subvolume, visible as a directory of the top level."""
    top = GuestRoot(str(mnt))
    for name in BTRFS_ROOT_SUBVOLS:
        if name + "/" not in facts.top:
            continue
        sub = read_facts(GuestRoot(top.resolve("/" + name)))
        if sub.score >= 4:
            vol.subvol = name
            return sub
    return facts


def remember(vol: Volume, facts) -> None:
    vol.os, vol.fstab, vol.top, vol.shells, vol.score = facts.os, facts.fstab, facts.top, facts.shells, facts.score


def pick_root(insp: Inspection) -> None:
    best = max(insp.filesystems(), key=lambda v: v.score, default=None)
    if best is not None and best.score >= 4:
        best.root = True
        insp.root = best.id
