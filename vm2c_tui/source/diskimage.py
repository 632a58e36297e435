"""A disk image as random-access bytes, read in user space.

Every reader offers `size`, `pread(length, offset)` and `close()`; raw and
VDI also offer `runs()`, their host byte ranges, so file data can be read
from (or copied out of) the image file without a Python stream in between.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from vm2c_tui.errors import Vm2cError
from vm2c_tui.source.magic import ImageInfo
from vm2c_tui.source.vdi import VdiDisk, open_chain


class RawDisk:
    def __init__(self, path: str, size: int | None = None):
        self.fd = os.open(path, os.O_RDONLY)
        self.size = size if size is not None else os.lseek(self.fd, 0, os.SEEK_END)  # block devices too

    def runs(self, offset: int, length: int):
        yield offset, max(min(length, self.size - offset), 0)

    def pread(self, length: int, offset: int) -> bytes:
        return os.pread(self.fd, length, offset)

    def close(self) -> None:
        os.close(self.fd)


class StreamDisk:
    """A dissect stream (seek + read) behind pread; a lock since the stream has one position."""

    def __init__(self, stream, size: int, closers):
        self.stream, self.size, self._closers = stream, size, closers
        self._lock = threading.Lock()

    def pread(self, length: int, offset: int) -> bytes:
        with self._lock:
            self.stream.seek(offset)
            return self.stream.read(length)

    def close(self) -> None:
        for c in self._closers:
            for fh in (c, getattr(c, "fh", None)):  # dissect's QCow2 has no close(), only its file
                if hasattr(fh, "close"):
                    fh.close()
                    break


def open_image(info: ImageInfo) -> RawDisk | VdiDisk | StreamDisk:
    path = str(info.path)
    if info.at_snapshot:
        raise Vm2cError(f"{path}: the user-space engine reads a qcow2's current state only; read internal snapshot "
                        f"{info.at_snapshot!r} on the kernel route (--engine kernel, as root)")
    try:
        if info.format == "raw":
            return RawDisk(path)
        if info.format == "vdi":
            return open_chain([path, *info.backing_chain])
        return _dissect(info)
    except Vm2cError:
        raise
    except Exception as exc:  # a corrupt header inside dissect: one line, no traceback
        raise Vm2cError(f"{path}: cannot read this {info.display_format} image in user space ({exc})") from None


def _dissect(info: ImageInfo) -> StreamDisk:
    from dissect.hypervisor.disk import qcow2, vhd, vhdx, vmdk

    path = Path(info.path)
    if info.format == "qcow2":
        return _qcow2_chain(qcow2, path, info.backing_chain)
    if info.format == "vmdk":
        img = vmdk.VMDK(path)
        return StreamDisk(img, img.size, [img])
    fh = open(path, "rb")
    if info.format == "vpc":
        img = vhd.VHD(fh)
    elif info.format == "vhdx":
        img = vhdx.VHDX(fh)
    else:
        fh.close()
        raise Vm2cError(f"{path}: {info.display_format} images are not readable by the user-space engine")
    return StreamDisk(img, img.size, [fh])


def _qcow2_chain(qcow2, top: Path, chain: list[str]) -> StreamDisk:
    """The qcow2 and the layers under it, each opened here from the chain vm2c resolved (qemu's
    own answer, inside the sandbox; imagerefs' without qemu), handed to dissect as open files:
    given a path, dissect would look for the backing file by the name in the header itself."""
    from vm2c_tui.source.magic import sniff

    below, files = None, []
    for layer in reversed([str(top), *chain]):
        fh = open(layer, "rb")
        files.append(fh)
        if sniff(Path(layer)) == "qcow2":
            img = qcow2.QCow2(fh, backing_file=below, allow_no_backing_file=below is None)
            files.append(img)
            below = img.open()
        else:
            below = fh
    return StreamDisk(below, img.size, files)


class Joined:
    """An LV in pieces (grown with lvextend) as one run of bytes: (offset, length) of each
    piece in DISK, in order."""

    def __init__(self, disk, extents: list[tuple[int, int]]):
        self.disk, self.extents = disk, extents
        self.size = sum(n for _, n in extents)

    def pread(self, length: int, offset: int) -> bytes:
        out, pos = [], 0
        for at, n in self.extents:
            if length <= 0:
                break
            if offset < pos + n:
                skip = max(offset - pos, 0)
                k = min(n - skip, length)
                data = self.disk.pread(k, at + skip)
                out.append(data)
                if len(data) < k:
                    break
                offset, length = offset + k, length - k
            pos += n
        return b"".join(out)

    def close(self) -> None:  # the image is closed by its owner
        pass


def volume_disk(disk, offset: int, extents: list[tuple[int, int]]):
    """(disk, offset) a filesystem reader takes for a volume: the image itself, or for an LV
    in pieces a joined view of them at offset 0."""
    return (Joined(disk, extents), 0) if extents else (disk, offset)


class Slice:
    """A read-only file object over DISK[offset:offset+size], for dissect's filesystem parsers."""

    def __init__(self, disk, offset: int, size: int):
        self.disk, self.offset, self.size, self.pos = disk, offset, size, 0

    def seek(self, pos: int, whence: int = 0) -> int:
        self.pos = pos if whence == 0 else self.pos + pos if whence == 1 else self.size + pos
        return self.pos

    def tell(self) -> int:
        return self.pos

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            n = self.size - self.pos
        n = max(min(n, self.size - self.pos), 0) if self.pos >= 0 else 0  # never before the slice
        data = self.disk.pread(n, self.offset + self.pos) if n else b""
        self.pos += len(data)
        return data

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True
