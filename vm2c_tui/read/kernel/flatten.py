"""A raw view of a VDI chain qemu cannot open (a differencing VDI: a VM's state since its last
snapshot), written by our own VDI reader into a private sparse file.

Chosen over serving the reader over NBD (nbdkit's Python plugin, nbdfuse): no extra daemon or
package, and the copy is made with copy_file_range from the images' own block runs, so no
byte passes through Python; it costs the disk's used space (benchmarks/results.md)."""

from __future__ import annotations

import os

from vm2c_tui.host.copyrange import copy_range
from vm2c_tui.host.session import Session
from vm2c_tui.source.magic import ImageInfo
from vm2c_tui.source.vdi import open_chain

WHY = ("qemu cannot read a differencing VDI: vm2c's own VDI reader copies the chain's current state "
       "(the image and its parents) to a temporary sparse raw file")


def flatten_vdi(session: Session, info: ImageInfo) -> str:
    work = session.tempdir("flatten")
    raw = work / "disk.raw"
    disk = open_chain([str(info.path), *info.backing_chain])
    fd = os.open(raw, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        os.ftruncate(fd, disk.size)
        for fd_in, host, at, n in _coalesced(disk.runs(0, disk.size)):
            copy_range(fd_in, fd, n, host, at)  # an image ending early leaves a hole: zeros
    finally:
        os.close(fd)
        disk.close()
    return str(raw)


def _coalesced(runs):
    """(file, host offset, guest offset, length) of the runs that hold data, neighbours in the
    same file joined: a VDI written in order is a few long copies, not one per block."""
    cur, at = None, 0
    for image, host, n in runs:
        if image is not None:
            if cur and cur[0] == image.fd and cur[1] + cur[3] == host and cur[2] + cur[3] == at:
                cur[3] += n
            else:
                if cur:
                    yield tuple(cur)
                cur = [image.fd, host, at, n]
        at += n
    if cur:
        yield tuple(cur)
