"""Identify an image where qemu-img is not installed (macOS, Windows, a bare container):
format by magic, size from our readers, and the same checks of the files it names as
formats.identify (imagerefs.py)."""

from __future__ import annotations

import os
from pathlib import Path

from vm2c_tui.errors import DamagedImage, Vm2cError
from vm2c_tui.source import imagerefs, subformats
from vm2c_tui.source.magic import NICE, ImageInfo, sniff


def identify_without_qemu(path: Path) -> ImageInfo:
    from vm2c_tui.source.diskimage import open_image

    fmt = sniff(path)
    info = ImageInfo(path=path, format=fmt, virtual_size=0, disk_size=os.stat(path).st_blocks * 512)
    info.warnings.append("qemu-img is not installed: the image was identified in user space "
                         "(no truncation check)")
    info.backing_chain, info.extents = imagerefs.check(path, fmt)
    info.disk_size += sum(os.stat(b).st_blocks * 512 for b in info.backing_chain)
    if fmt == "qcow2" and any(kind == "external data file" for kind, _ in imagerefs.qcow2_names(path)):
        raise Vm2cError(f"{path}: a qcow2 image with an external data file is not read in user space "
                        "(the kernel route reads it, with qemu-img installed)")
    info.subformat = subformats.of(path, fmt)
    try:
        disk = open_image(info)
    except Vm2cError as exc:
        raise DamagedImage(f"{path}: damaged {NICE.get(fmt, fmt)} image ({exc.message})") from None
    info.virtual_size = disk.size
    disk.close()
    return info
