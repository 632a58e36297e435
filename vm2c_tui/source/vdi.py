"""VirtualBox VDI, read through its block map, with the parents of a differencing image.

Our own reader, not dissect's: VirtualBox stores blocks in the order the
guest wrote them, and dissect.hypervisor's VDI returned wrong data for a read
crossing two blocks stored out of order (docs/userspace-engine.md). qemu 7.2
refuses differencing VDIs outright, so this reader is also how the kernel route
sees a VM's current state when it lives under Snapshots/ (read/kernel/attach.py).
"""

from __future__ import annotations

import os
import struct
import uuid
from dataclasses import dataclass

from vm2c_tui.errors import DamagedImage, Vm2cError

SIGNATURE = 0xBEDA107F
FREE, ZERO = 0xFFFFFFFF, 0xFFFFFFFE  # FREE: not in this image (the parent's, or zeros); ZERO: zeros
MAX_BLOCKS = 1 << 26
DIFFERENCING = 4


@dataclass
class VdiHeader:
    kind: int  # 1 dynamic, 2 fixed, 3 undo, 4 differencing
    size: int
    uuid: str  # this image's creation uuid, as VirtualBox writes it: {xxxxxxxx-...}
    modify: str
    parent: str  # uuidLinkage: the parent's creation uuid ("" for none)
    parent_modify: str

    @property
    def differencing(self) -> bool:
        return self.kind == DIFFERENCING


def _uuid(raw: bytes) -> str:
    return "" if raw == bytes(16) else "{" + str(uuid.UUID(bytes_le=raw)) + "}"


def read_header(path: str) -> VdiHeader | None:
    """The header of a VDI file, None when PATH is no VDI."""
    try:
        with open(path, "rb") as f:
            head = f.read(512)
    except OSError:
        return None
    if len(head) < 472 or struct.unpack_from("<I", head, 64)[0] != SIGNATURE:
        return None
    (kind,) = struct.unpack_from("<I", head, 76)
    (size,) = struct.unpack_from("<Q", head, 368)
    ids = [_uuid(head[at:at + 16]) for at in (392, 408, 424, 440)]
    return VdiHeader(kind, size, *ids)


class VdiDisk:
    """One VDI; PARENT (a VdiDisk) answers the blocks a differencing image does not hold."""

    def __init__(self, path: str, parent: VdiDisk | None = None, *, map_only: bool = False):
        """MAP_ONLY: a differencing image opened without its parent, for its block map alone."""
        self.fd = os.open(path, os.O_RDONLY)
        self.parent = parent
        try:
            self._read_header(path, map_only)
        except BaseException:
            self.close()
            raise

    def _read_header(self, path: str, map_only: bool) -> None:
        head = os.pread(self.fd, 512, 0)
        if len(head) < 400 or struct.unpack_from("<I", head, 64)[0] != SIGNATURE:
            raise Vm2cError(f"{path}: not a VDI image")
        (version,) = struct.unpack_from("<I", head, 68)
        if version >> 16 != 1:
            raise Vm2cError(f"{path}: VDI version {version >> 16}.{version & 0xffff} is not supported")
        (kind,) = struct.unpack_from("<I", head, 76)
        if kind == DIFFERENCING and self.parent is None and not map_only:
            raise Vm2cError(f"{path}: a differencing VDI (a snapshot's changes) is never read without its "
                            f"parent, which was not found")
        off_blocks, self.off_data = struct.unpack_from("<II", head, 340)
        self.size, self.block, self.extra, count = struct.unpack_from("<QIII", head, 368)
        if not self.block or self.block & 511 or count > MAX_BLOCKS or count * self.block < self.size:
            raise DamagedImage(f"{path}: VDI header is corrupt")
        raw = os.pread(self.fd, count * 4, off_blocks)
        if len(raw) != count * 4:
            raise DamagedImage(f"{path}: VDI block map is truncated")
        self.map = struct.unpack(f"<{count}I", raw)

    def data_end(self) -> int:
        """Where the last block this image holds ends in its file."""
        used = [e for e in self.map if e < ZERO]
        return self.off_data + (max(used) + 1) * (self.block + self.extra) if used else 0

    def runs(self, offset: int, length: int):
        """(image, host offset, length) pieces of [offset, offset+length): IMAGE the VdiDisk
        whose file holds them, or None (with host offset None) for zeros."""
        end = min(offset + length, self.size)
        while offset < end:
            idx, within = divmod(offset, self.block)
            n = min(self.block - within, end - offset)
            entry = self.map[idx]
            if entry == FREE and self.parent is not None:
                yield from self._from_parent(offset, n)
            elif entry in (FREE, ZERO):
                yield None, None, n
            else:
                yield self, self.off_data + entry * (self.block + self.extra) + self.extra + within, n
            offset += n

    def _from_parent(self, offset: int, n: int):
        inside = max(min(n, self.parent.size - offset), 0)
        if inside:
            yield from self.parent.runs(offset, inside)
        if n > inside:  # a child grown past its parent's size: zeros there
            yield None, None, n - inside

    def pread(self, length: int, offset: int) -> bytes:
        parts = []
        for image, host, n in self.runs(offset, length):
            if image is None:
                parts.append(bytes(n))
            else:
                data = os.pread(image.fd, n, host)
                parts.append(data + bytes(n - len(data)))
        return b"".join(parts)

    def close(self) -> None:
        if getattr(self, "fd", -1) >= 0:
            os.close(self.fd)
            self.fd = -1
        if self.parent is not None:
            self.parent.close()


def open_chain(paths: list[str]) -> VdiDisk:
    """PATHS top first (the image, then its parents down to the base), opened base up."""
    disk = None
    try:
        for path in reversed(paths):
            disk = VdiDisk(path, disk)
    except BaseException:
        if disk is not None:
            disk.close()
        raise
    assert disk is not None
    return disk
