"""A format's variant, read from its own header: what --json reports as `subformat`.

Informational only (nothing is opened or decided by it): VMDK's createType, whether a VDI,
VHD or VHDX is dynamic, fixed or differencing; "" for raw and qcow2, or when unreadable.
"""

from __future__ import annotations

import re
import struct
import uuid
from pathlib import Path

from vm2c_tui.source import imagerefs

VDI_TYPES = {1: "dynamic", 2: "fixed", 3: "undo", 4: "differencing"}
VHD_TYPES = {2: "fixed", 3: "dynamic", 4: "differencing"}
VHDX_METADATA = uuid.UUID("8B7CA206-4790-4B9A-B8FE-575F050F886E").bytes_le
VHDX_FILE_PARAMETERS = uuid.UUID("CAA16737-FA36-4D43-B3B6-33F0AA44E76B").bytes_le


def of(path: Path, fmt: str) -> str:
    try:
        with open(path, "rb") as f:
            if fmt == "vdi":
                f.seek(0x4C)
                return VDI_TYPES.get(struct.unpack("<I", f.read(4))[0], "")
            if fmt == "vpc":
                return _vhd(f)
            if fmt == "vhdx":
                return _vhdx(f)
        if fmt == "vmdk":
            kind = re.search(rb'createType\s*=\s*"([A-Za-z0-9]+)"', imagerefs.vmdk_descriptor(path))
            return kind.group(1).decode("ascii", "replace") if kind else ""
    except (OSError, struct.error, ValueError):
        pass
    return ""


def _vhd(f) -> str:
    """The footer's disk type (big-endian, offset 60); a fixed VHD has the footer only at the end."""
    head = f.read(512)
    if not head.startswith(b"conectix"):
        f.seek(-512, 2)
        head = f.read(512)
    return VHD_TYPES.get(struct.unpack(">I", head[60:64])[0], "") if head.startswith(b"conectix") else ""


def _vhdx(f) -> str:
    """The metadata region's File Parameters: LeaveBlockAllocated (fixed), HasParent."""
    f.seek(192 * 1024)
    table = f.read(64 * 1024)
    if table[:4] != b"regi":
        return ""
    (count,) = struct.unpack_from("<I", table, 8)
    for i in range(min(count, 2047)):
        guid, offset, _length = struct.unpack_from("<16sQI", table, 16 + 32 * i)
        if guid == VHDX_METADATA:
            f.seek(offset)
            meta = f.read(64 * 1024)
            if meta[:8] != b"metadata":
                return ""
            (entries,) = struct.unpack_from("<H", meta, 10)
            for j in range(min(entries, 2047)):
                item, item_off = struct.unpack_from("<16sI", meta, 32 + 32 * j)
                if item == VHDX_FILE_PARAMETERS:
                    f.seek(offset + item_off)
                    _block, flags = struct.unpack("<II", f.read(8))
                    return "differencing" if flags & 2 else "fixed" if flags & 1 else "dynamic"
    return ""
