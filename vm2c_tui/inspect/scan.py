"""From a disk's bytes to an Inspection, whichever engine supplies them: the table, each
partition's signature, the LVM volumes, refusing tables and metadata no tool writes.

An engine hands scan() a reader with table(), probe() and open() (read/kernel: sfdisk and blkid
on the raw view; read/userspace: our own parsers on the image's bytes).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path

from vm2c_tui.errors import Vm2cError
from vm2c_tui.host.system import can_mount, holder_warning
from vm2c_tui.inspect import lvm
from vm2c_tui.inspect.model import Inspection, Partition, Volume
from vm2c_tui.inspect.table import EXTENDED, type_name
from vm2c_tui.source import diskset
from vm2c_tui.source.diskimage import Slice
from vm2c_tui.source.identify import identify

LINUX_FS = {"ext2", "ext3", "ext4", "xfs", "btrfs"}


LISTED = {"swap": "swap", "crypto_LUKS": "encrypted (LUKS): not opened", "LVM2_member": "",
          "vfat": "", "ntfs": "", "iso9660": ""}


Progress = Callable[[str], None]


def identify_noting(path: str | os.PathLike, note: Progress, snapshot: str = ""):
    """The image's format, and the warnings every inspection starts with."""
    note("identifying the image format")
    info = identify(Path(path), snapshot)
    warnings = list(info.warnings)
    held = holder_warning(str(info.path))
    if held:
        warnings.append(held)
    return info, warnings


@contextlib.contextmanager
def naming(path):
    """An error from inside an inspection says which image it is about."""
    try:
        yield
    except Vm2cError as exc:
        if str(path) in exc.message:
            raise
        raise exc.about(path) from None


def scan(info, reader, warnings: list[str], note: Progress, method: str = "", why: str = "") -> Inspection:
    """Table, signatures and LVM through READER (ToolReader here, the user-space engine's own)."""
    insp = _scan_table(info, reader, warnings, note, method, why)
    note("reading LVM metadata")
    _scan_lvm(reader, insp, user_space=method == "userspace")
    return insp


def scan_disks(infos, readers, whole, warnings: list[str], note: Progress, method: str = "",
               why: str = "") -> Inspection:
    """Several disks of one VM in one address space (source/diskset.py): each disk's table and
    signatures through its own reader, ids prefixed d1/, d2/ ...; then LVM over WHOLE (a disk
    object for the space), so a VG whose PVs lie on two disks is assembled."""
    if len(infos) == 1:
        return scan(infos[0], readers[0], warnings, note, method, why)
    starts = diskset.bases([i.virtual_size for i in infos])
    insp = None
    for k, (info, reader) in enumerate(zip(infos, readers)):
        one = _scan_table(info, reader, warnings, note, method, why)
        for p in one.partitions:
            p.offset, p.disk, p.id = p.offset + starts[k], k, f"d{k + 1}/{p.id}"
        if insp is None:
            insp = one
        else:
            insp.partitions += one.partitions
            insp.disk_size += one.disk_size
            insp.backing_chain += one.backing_chain
    assert insp is not None
    insp.virtual_size = starts[-1] + infos[-1].virtual_size
    note("reading LVM metadata")
    _scan_lvm(SpaceReader(readers, starts, [i.virtual_size for i in infos], whole), insp,
              user_space=method == "userspace")
    for p in insp.partitions:
        for v in p.volumes:
            v.disk = diskset.locate(starts, [i.virtual_size for i in infos], v.offset)[0] if v.readable else p.disk
            v.id = f"d{v.disk + 1}/{v.id}"
            if v.extents and len({diskset.locate(starts, [i.virtual_size for i in infos], a)[0]
                                  for a, _ in v.extents}) > 1:
                v.note = "linear across PVs on several disks: read joined"
    return insp


class SpaceReader:
    """probe() through each disk's own reader, open() over the whole space (LVM labels and
    metadata are read at offsets of the space)."""

    def __init__(self, readers, starts: list[int], sizes: list[int], whole):
        self.readers, self.starts, self.sizes, self.whole = readers, starts, sizes, whole

    def probe(self, offset: int, size: int):
        k, local = diskset.locate(self.starts, self.sizes, offset)
        return self.readers[k].probe(local, min(size, self.sizes[k] - local))

    def open(self):
        return contextlib.nullcontext(Slice(self.whole, 0, self.whole.size))


def _scan_table(info, reader, warnings: list[str], note: Progress, method: str, why: str) -> Inspection:
    note("reading the partition table")
    label, raw_parts = reader.table(warnings)
    insp = Inspection(str(info.path), info.name, info.subformat, info.virtual_size, info.disk_size,
                      label, [], None, warnings, method, why, info.backing_chain)
    insp.internal_snapshots = list(info.snapshots)
    if info.snapshots:
        names = ", ".join(repr(s["name"]) for s in info.snapshots[:5])
        warnings.append(f"the qcow2 holds {len(info.snapshots)} internal snapshot(s) ({names}); vm2c reads its "
                        f"current state (to read one: qemu-img convert -l snapshot.name=NAME -O qcow2 it one.qcow2)")
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
    pvs, texts = _physical_volumes(reader, insp)
    seen = set()
    claimed: list[tuple[int, int, str]] = []  # (start, end, LV) of every segment on this disk
    for part, text in texts:
        for lv in lvm.logical_volumes(text):
            if lv.id in seen or lv.kind == "hidden":
                continue
            seen.add(lv.id)
            vol = _logical_volume(reader, insp, lv, pvs, claimed, user_space)
            # the VG holding it is the partition whose metadata names it first
            owner = pvs.get(lv.segments[0].pv_uuid, part) if lv.segments else part
            owner.volumes.append(vol)
    if clash := _overlap(claimed):  # LVM never maps one extent twice: one LV would be read as another
        (_s1, _e1, a), (_s2, _e2, b) = clash
        raise Vm2cError(f"{insp.source}: LVM metadata is corrupt or crafted: LVs {a!r} and {b!r} share "
                        "extents of one PV")


def _physical_volumes(reader, insp: Inspection) -> tuple[dict[str, Partition], list]:
    """The PVs on this disk by uuid, and (partition, metadata text) for those that carry it."""
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
    return pvs, texts


def _logical_volume(reader, insp: Inspection, lv, pvs: dict[str, Partition], claimed: list,
                    user_space: bool) -> Volume:
    """LV as a Volume: where its segments lie on this disk (each claimed), and its signature."""
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
        missing = sorted({s.pv_uuid for s in lv.segments if s.pv_uuid not in pvs})
        vol.note = (f"a PV of its VG is not on the disks read ({', '.join(missing[:2])}): give the VM's definition "
                    f"or all its disks")
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
    return vol


def _merge(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[list[int]] = []
    for off, ln in ranges:
        if out and out[-1][0] + out[-1][1] == off:
            out[-1][1] += ln
        else:
            out.append([off, ln])
    return [(a, b) for a, b in out]
