"""VirtualBox VDI, read through its block map.

Our own reader, not dissect's: VirtualBox stores blocks in the order the
guest wrote them, and dissect.hypervisor's VDI returned wrong data for a read
crossing two blocks stored out of order (docs/userspace-engine.md).
"""

from __future__ import annotations

import os
import struct

from vm2c_tui.errors import Vm2cError

SIGNATURE = 0xBEDA107F
FREE, ZERO = 0xFFFFFFFF, 0xFFFFFFFE
MAX_BLOCKS = 1 << 26


class VdiDisk:
    def __init__(self, path: str):
        self.fd = os.open(path, os.O_RDONLY)
        head = os.pread(self.fd, 512, 0)
        if len(head) < 400 or struct.unpack_from("<I", head, 64)[0] != SIGNATURE:
            raise Vm2cError(f"{path}: not a VDI image")
        (version,) = struct.unpack_from("<I", head, 68)
        if version >> 16 != 1:
            raise Vm2cError(f"{path}: VDI version {version >> 16}.{version & 0xffff} is not supported")
        (kind,) = struct.unpack_from("<I", head, 76)
        if kind == 4:
            raise Vm2cError(f"{path}: a VDI differencing image needs its parent; convert the chain first")
        off_blocks, self.off_data = struct.unpack_from("<II", head, 340)
        self.size, self.block, self.extra, count = struct.unpack_from("<QIII", head, 368)
        if not self.block or self.block & 511 or count > MAX_BLOCKS or count * self.block < self.size:
            raise Vm2cError(f"{path}: VDI header is corrupt")
        raw = os.pread(self.fd, count * 4, off_blocks)
        if len(raw) != count * 4:
            raise Vm2cError(f"{path}: VDI block map is truncated")
        self.map = struct.unpack(f"<{count}I", raw)

    def runs(self, offset: int, length: int):
        """(host offset or None for zeros, length) pieces of [offset, offset+length)."""
        end = min(offset + length, self.size)
        while offset < end:
            idx, within = divmod(offset, self.block)
            n = min(self.block - within, end - offset)
            entry = self.map[idx]
            if entry in (FREE, ZERO):
                yield None, n
            else:
                yield self.off_data + entry * (self.block + self.extra) + self.extra + within, n
            offset += n

    def pread(self, length: int, offset: int) -> bytes:
        parts = []
        for host, n in self.runs(offset, length):
            if host is None:
                parts.append(bytes(n))
            else:
                data = os.pread(self.fd, n, host)
                parts.append(data + bytes(n - len(data)))
        return b"".join(parts)

    def close(self) -> None:
        os.close(self.fd)
