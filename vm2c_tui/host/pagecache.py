"""How much of a disk image is already in the page cache, and what that says about reading it.

A loop device reads its backing file through the page cache, then copies every page
again into the guest filesystem's own cache: the image is cached twice. When the image
is cold (just copied off a hypervisor, a VM that ran with cache=none), direct I/O skips
the first copy and the CPU it costs, which the daemon gets back during a convert (cold,
paired runs: convert 20.0 -> 18.6 s, archive alone 4.96 -> 4.74 s). When the image is
already cached (converted twice, written by `--view copy`) direct I/O rereads the disk
instead and loses (convert 20.6 -> 23.6 s), so the choice follows what mincore(2) says.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import functools
import mmap
import os
import stat

from vm2c_tui.host import tuning

PAGE = mmap.PAGESIZE
CHUNK = 1 << 30  # mapped and asked at a time: the answer vector is CHUNK / PAGE bytes
_MAP_FAILED = ctypes.c_void_p(-1).value


@functools.cache
def _libc():
    """Loaded on first use, so importing this module costs nothing where it is never asked."""
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p]
    return libc


def resident_fraction(path: str, offset: int, size: int) -> float | None:
    """The share of the data pages (holes left out) of PATH[offset:offset+size] that are in
    the page cache; None when it cannot be told (not a regular file, no data, an error)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        resident = total = 0
        for start, end in data_runs(fd, offset, offset + size):
            r, t = _count(fd, start - start % PAGE, end)
            resident += r
            total += t
        return resident / total if total else None
    except OSError:
        return None
    finally:
        os.close(fd)


def data_runs(fd: int, start: int, end: int):
    """(start, end) runs of data in [start, end) of a sparse file, by SEEK_DATA/SEEK_HOLE;
    an error other than ENXIO (only a hole from here on) is raised (joincopy.py uses it too)."""
    pos = start
    while pos < end:
        try:
            data = os.lseek(fd, pos, os.SEEK_DATA)
        except OSError as exc:
            if exc.errno == errno.ENXIO:
                return
            raise
        if data >= end:
            return
        hole = min(os.lseek(fd, data, os.SEEK_HOLE), end)
        yield data, hole
        pos = hole


def _count(fd: int, start: int, end: int) -> tuple[int, int]:
    libc = _libc()
    resident = total = 0
    for off in range(start, end, CHUNK):
        length = min(CHUNK, end - off)
        pages = (length + PAGE - 1) // PAGE
        addr = libc.mmap(None, length, mmap.PROT_READ, mmap.MAP_SHARED, fd, off)
        if addr in (None, _MAP_FAILED):
            raise OSError(ctypes.get_errno(), "mmap")
        try:
            vec = ctypes.create_string_buffer(pages)
            if libc.mincore(addr, length, vec) != 0:
                raise OSError(ctypes.get_errno(), "mincore")
            resident += pages - vec.raw.count(0)  # the low bit is set, the others reserved (0)
            total += pages
        finally:
            libc.munmap(addr, length)
    return resident, total


def direct_io_pays(path: str, offset: int, size: int) -> bool:
    """Whether a loop device over PATH[offset:offset+size] should read with direct I/O: a
    regular file on a block device's filesystem (not FUSE, tmpfs: their device major is 0),
    sector-aligned, and less than half of it cached. VM2C_LOOP_DIRECT_IO=0/1 decides instead
    (benchmarks/ measures both ways)."""
    forced = tuning.loop_direct_io()
    if forced is not None:
        return forced
    try:
        st = os.stat(path)
    except OSError:
        return False
    if not stat.S_ISREG(st.st_mode) or os.major(st.st_dev) == 0 or offset % 512:
        return False
    share = resident_fraction(path, offset, size)
    return share is not None and share < 0.5
