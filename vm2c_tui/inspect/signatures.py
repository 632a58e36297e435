"""Filesystem signatures read in user space: what `blkid -p` says, for the types vm2c handles."""

from __future__ import annotations

import struct
import uuid

from vm2c_tui.inspect.probe import Signature


def _uuid(b: bytes) -> str:
    return "" if b == bytes(16) else str(uuid.UUID(bytes=b))


def _text(b: bytes) -> str:
    return b.split(b"\0", 1)[0].decode("utf-8", "replace").rstrip(" ")


def probe(disk, offset: int, size: int) -> Signature:
    def at(off: int, n: int) -> bytes:
        return disk.pread(n, offset + off) if off + n <= size else b""

    head = at(0, 4096)
    for fn in (_luks, _xfs, _ext, _btrfs, _lvm, _swap, _vfat):
        sig = fn(at, head)
        if sig is not None:
            return sig
    return Signature()


def _ext(at, head):
    sb = head[1024:2048]
    if len(sb) < 256 or sb[56:58] != b"\x53\xef":
        return None
    compat, incompat, ro = struct.unpack_from("<III", sb, 92)
    if incompat & 0x8:
        return Signature("jbd", _text(sb[120:136]), _uuid(sb[104:120]))
    if incompat & ~(0x2 | 0x4 | 0x10) or ro & ~(0x1 | 0x2 | 0x4):
        kind = "ext4"
    else:
        kind = "ext3" if compat & 0x4 else "ext2"
    return Signature(kind, _text(sb[120:136]), _uuid(sb[104:120]), "filesystem")


def _xfs(at, head):
    if head[:4] != b"XFSB":
        return None
    return Signature("xfs", _text(head[108:120]), _uuid(head[32:48]), "filesystem")


def _btrfs(at, head):
    sb = at(0x10000, 4096)
    if sb[0x40:0x48] != b"_BHRfS_M":
        return None
    return Signature("btrfs", _text(sb[0x12B:0x22B]), _uuid(sb[0x20:0x30]), "filesystem")


def _lvm(at, head):
    for s in range(4):
        blk = head[s * 512:(s + 1) * 512]
        if blk[:8] == b"LABELONE" and blk[24:32] == b"LVM2 001":
            (off,) = struct.unpack_from("<I", blk, 20)
            raw = blk[off:off + 32].decode("ascii", "replace") if 32 <= off <= 480 else ""
            pv = "-".join((raw[0:6], raw[6:10], raw[10:14], raw[14:18], raw[18:22], raw[22:26], raw[26:32]))
            return Signature("LVM2_member", "", pv if raw else "", "raid")
    return None


def _swap(at, head):
    for page in (4096, 8192, 16384, 65536):
        if at(page - 10, 10) in (b"SWAPSPACE2", b"SWAP-SPACE"):
            return Signature("swap", _text(head[1052:1068]), _uuid(head[1036:1052]), "other")
    return None


def _luks(at, head):
    if head[:6] != b"LUKS\xba\xbe":
        return None
    (version,) = struct.unpack_from(">H", head, 6)
    label = _text(head[24:72]) if version == 2 else ""
    return Signature("crypto_LUKS", label, _text(head[168:208]), "crypto")


def _vfat(at, head):
    if head[510:512] != b"\x55\xaa":
        return None
    if head[82:87] == b"FAT32":
        serial, label = head[67:71], head[71:82]
    elif head[54:59] in (b"FAT12", b"FAT16"):
        serial, label = head[39:43], head[43:54]
    else:
        return None
    (n,) = struct.unpack("<I", serial)
    name = _text(_root_label(at, head) or label)
    return Signature("vfat", "" if name == "NO NAME" else name, f"{n >> 16:04X}-{n & 0xffff:04X}", "filesystem")


def _root_label(at, head) -> bytes | None:
    """The volume-label entry of the root directory, which blkid prefers to the boot sector's copy."""
    bps, spc, reserved, nfats, root_entries, total16, _, fat16 = struct.unpack_from("<HBHBHHBH", head, 11)
    if not bps or not spc:
        return None
    if head[82:87] == b"FAT32":
        (fat32,) = struct.unpack_from("<I", head, 36)
        (root_cluster,) = struct.unpack_from("<I", head, 44)
        data = (reserved + nfats * fat32) * bps
        start, length = data + (root_cluster - 2) * spc * bps, spc * bps
    else:
        start, length = (reserved + nfats * fat16) * bps, root_entries * 32
    d = at(start, min(length, 1 << 16))
    for i in range(0, len(d) - 31, 32):
        e = d[i:i + 32]
        if e[0] == 0:
            break
        if e[0] != 0xE5 and e[11] & 0x08 and e[11] != 0x0F:
            return e[:11]
    return None
