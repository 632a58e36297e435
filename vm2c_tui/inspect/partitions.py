"""GPT and MBR tables parsed in user space, to the same result as table.read_table (sfdisk).

Our own parser, not dissect.volume's: that one reported every GPT partition one
sector short (docs/userspace-engine.md). Every number is checked against the disk.
"""

from __future__ import annotations

import struct
import uuid
import zlib

from vm2c_tui.errors import Vm2cError
from vm2c_tui.inspect.table import EXTENDED, RawPartition

SECTOR = 512
MAX_ENTRIES = 1024
MAX_LOGICAL = 128


def _guid(b: bytes) -> str:
    return str(uuid.UUID(bytes_le=b))


def read_table(disk, warnings: list[str] | None = None) -> tuple[str, list[RawPartition]]:
    mbr = disk.pread(SECTOR, 0)
    if len(mbr) < SECTOR or mbr[510:512] != b"\x55\xaa":
        return "none", []
    entries = [struct.unpack_from("<B3sB3sII", mbr, 446 + 16 * i) for i in range(4)]
    if any(e[2] == 0xEE for e in entries):
        return "gpt", _gpt(disk, warnings)
    if _looks_like_fs_boot_sector(mbr, entries):
        return "none", []
    return "dos", _mbr(disk, mbr, entries)


def _looks_like_fs_boot_sector(mbr: bytes, entries) -> bool:
    """A FAT boot sector also ends in 55 AA; sfdisk does not take it for a table."""
    return mbr[82:87] == b"FAT32" or mbr[54:59] in (b"FAT12", b"FAT16") or not any(e[2] for e in entries)


def _gpt(disk, warnings) -> list[RawPartition]:
    sectors = disk.size // SECTOR
    for lba, which in ((1, "primary"), (sectors - 1, "backup")):
        parts = _gpt_at(disk, lba, sectors)
        if parts is not None:
            if which == "backup" and warnings is not None:
                warnings.append("the primary GPT is corrupt; its backup copy at the end of the disk was used")
            return parts
    raise Vm2cError("partition table is corrupt: a GPT protective MBR, but neither the primary "
                    "nor the backup GPT is valid")


def _gpt_at(disk, lba: int, sectors: int) -> list[RawPartition] | None:
    hdr = disk.pread(SECTOR, lba * SECTOR)
    if len(hdr) < 92 or hdr[:8] != b"EFI PART":
        return None
    (hsize,) = struct.unpack_from("<I", hdr, 12)
    if not 92 <= hsize <= SECTOR:
        return None
    crc = struct.unpack_from("<I", hdr, 16)[0]
    if zlib.crc32(hdr[:16] + b"\0\0\0\0" + hdr[20:hsize]) != crc:
        return None
    first, last = struct.unpack_from("<QQ", hdr, 40)
    entries_lba, count, esize, ecrc = struct.unpack_from("<QIII", hdr, 72)
    if count > MAX_ENTRIES or esize < 128 or esize > 4096 or entries_lba >= sectors:
        return None
    table = disk.pread(count * esize, entries_lba * SECTOR)
    if zlib.crc32(table) != ecrc:
        return None
    out = []
    for i in range(count):
        e = table[i * esize:(i + 1) * esize]
        if e[:16] == bytes(16):
            continue
        start, end = struct.unpack_from("<QQ", e, 32)
        name = e[56:128].decode("utf-16-le", "replace").rstrip("\0")
        _check(i + 1, start, end - start + 1, sectors)
        out.append(RawPartition(i + 1, start, end - start + 1, _guid(e[:16]).upper(), _guid(e[16:32]), name))
    return out


def _check(number: int, start: int, size: int, sectors: int) -> None:
    if start <= 0 or size <= 0 or start + size > sectors:
        raise Vm2cError(f"partition table is corrupt: partition {number} "
                        f"(sectors {start}-{start + size - 1}) lies outside the {sectors}-sector disk")


def _mbr(disk, mbr: bytes, entries) -> list[RawPartition]:
    sectors = disk.size // SECTOR
    (disk_id,) = struct.unpack_from("<I", mbr, 440)
    ident = f"{disk_id:08x}" if disk_id else ""
    out: list[RawPartition] = []

    def add(number, start, size, ptype):
        _check(number, start, size, sectors)
        out.append(RawPartition(number, start, size, f"{ptype:x}", f"{ident}-{number:02x}" if ident else "", ""))

    ext_start = None
    for i, (_, _, ptype, _, start, size) in enumerate(entries):
        if ptype == 0 or size == 0:
            continue
        add(i + 1, start, size, ptype)
        if f"{ptype:x}" in EXTENDED and ext_start is None:
            ext_start = start
    number, ebr = 5, ext_start
    seen: set[int] = set()
    while ebr is not None and number < 5 + MAX_LOGICAL:
        if ebr in seen or ebr >= sectors:
            raise Vm2cError("partition table is corrupt: the chain of logical partitions loops or leaves the disk")
        seen.add(ebr)
        sec = disk.pread(SECTOR, ebr * SECTOR)
        if len(sec) < SECTOR or sec[510:512] != b"\x55\xaa":
            break
        _, _, ptype, _, rel, size = struct.unpack_from("<B3sB3sII", sec, 446)
        _, _, ntype, _, nrel, _ = struct.unpack_from("<B3sB3sII", sec, 462)
        if ptype and size:
            add(number, ebr + rel, size, ptype)
            number += 1
        ebr = ext_start + nrel if ntype and nrel else None
    return out
