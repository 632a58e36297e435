"""A VM's disks as one address space: disk N starts at bases[N] (each rounded up to a MiB), so a
filesystem, an LV on one disk, or an LV whose PVs lie on two disks is a byte range (or a list of
ranges) of one space, and both engines read it the way they read one disk. A single disk is the
space itself (base 0): its offsets and ids stay what they always were."""

from __future__ import annotations

import bisect

from vm2c_tui.errors import Vm2cError

ALIGN = 1 << 20


def bases(sizes: list[int]) -> list[int]:
    out, at = [], 0
    for size in sizes:
        out.append(at)
        at += (size + ALIGN - 1) // ALIGN * ALIGN
    return out


def locate(starts: list[int], sizes: list[int], offset: int) -> tuple[int, int]:
    """(disk index, offset within it) of a byte of the space."""
    k = bisect.bisect_right(starts, offset) - 1
    if k < 0 or offset - starts[k] >= sizes[k]:
        raise Vm2cError(f"byte {offset} of the VM's disks lies on none of them (between two disks)")
    return k, offset - starts[k]


class Concat:
    """Several disks (each with size and pread) as one: the space between them reads as zeros."""

    def __init__(self, disks: list):
        self.disks = disks
        self.sizes = [d.size for d in disks]
        self.starts = bases(self.sizes)
        self.size = self.starts[-1] + self.sizes[-1]

    def pread(self, length: int, offset: int) -> bytes:
        out = []
        end = min(offset + length, self.size)
        while offset < end:
            k = bisect.bisect_right(self.starts, offset) - 1
            local = offset - self.starts[k]
            stop = self.starts[k + 1] if k + 1 < len(self.starts) else self.size
            n = min(end, stop) - offset
            if local < self.sizes[k]:
                take = min(n, self.sizes[k] - local)
                data = self.disks[k].pread(take, local)
                out.append(data + bytes(take - len(data)))
                n = take
            else:
                out.append(bytes(n))
            offset += n
        return b"".join(out)

    def close(self) -> None:
        for d in self.disks:
            d.close()


def as_one(disks: list):
    """One disk as itself; several as their Concat."""
    return disks[0] if len(disks) == 1 else Concat(disks)
