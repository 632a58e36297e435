"""Identify an image where qemu-img is not installed (macOS, Windows, a bare container):
format by magic, size from our readers, and the same refusals as formats.identify for
backing files and VMDK extents that point outside the image's directory."""

from __future__ import annotations

import os
import re
import struct
from pathlib import Path

from ...errors import Vm2cError
from ..formats import NICE, ImageInfo, sniff

EXTENT = re.compile(rb'^\s*(?:RW|RDONLY|NOACCESS)\s+\d+\s+\w+\s+"([^"]+)"', re.M)
MAX_DESCRIPTOR = 1 << 20


def _inside(base: Path, name: str) -> str:
    p = os.path.realpath(os.path.join(base, name))
    if os.path.commonpath([p, str(base)]) != str(base):
        raise Vm2cError(f"{name} lies outside {base}; refusing to read it")
    return p


def _vmdk_descriptor(path: Path) -> bytes:
    with open(path, "rb") as f:
        head = f.read(512)
        if head.startswith(b"KDMV"):
            off, size = struct.unpack_from("<QQ", head, 28)
            if not off or size * 512 > MAX_DESCRIPTOR:
                return b""
            f.seek(off * 512)
            return f.read(size * 512)
        return head + f.read(MAX_DESCRIPTOR - 512)


def identify_without_qemu(path: Path) -> ImageInfo:
    from .images import open_image

    fmt = sniff(path)
    base = path.parent
    info = ImageInfo(path=path, format=fmt, virtual_size=0, disk_size=os.stat(path).st_blocks * 512)
    info.warnings.append("qemu-img is not installed: the image was identified in user space "
                         "(no truncation check)")
    if fmt == "qcow2":
        with open(path, "rb") as f:
            head = f.read(104)
        off, size = struct.unpack_from(">QI", head, 8)
        version, = struct.unpack_from(">I", head, 4)
        if version >= 3 and len(head) >= 80 and struct.unpack_from(">Q", head, 72)[0] & 4:
            raise Vm2cError(f"{path}: a qcow2 image with an external data file is not read in user space "
                            "(install qemu-img: it checks where that file is)")
        if off:
            with open(path, "rb") as f:
                f.seek(off)
                name = f.read(min(size, 4096)).decode("utf-8", "replace")
            try:
                backing = _inside(base, name)
            except Vm2cError as exc:
                raise Vm2cError(f"{path}: backing file {exc.message}") from None
            info.backing_chain.append(backing)
            info.disk_size += os.stat(backing).st_blocks * 512
    elif fmt == "vmdk":
        desc = _vmdk_descriptor(path)
        for m in EXTENT.finditer(desc):
            name = m.group(1).decode("utf-8", "replace")
            try:
                ext = _inside(base, name)
            except Vm2cError as exc:
                raise Vm2cError(f"{path}: VMDK extent {exc.message}") from None
            if ext != str(path):
                info.extents.append(ext)
        kind = re.search(rb'createType="([^"]+)"', desc)
        info.subformat = kind.group(1).decode("ascii", "replace") if kind else ""
    try:
        disk = open_image(info)
    except Vm2cError as exc:
        raise Vm2cError(f"{path}: damaged {NICE.get(fmt, fmt)} image ({exc.message})") from None
    info.virtual_size = disk.size
    disk.close()
    return info
