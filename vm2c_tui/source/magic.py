"""What a file's bytes say it is: the container format by its magic numbers, never its name."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

# name -> qemu driver; order matters only for the header sniffing below
FORMATS = ("raw", "qcow2", "vdi", "vmdk", "vpc", "vhdx")
NICE = {"vpc": "vhd"}


@dataclass
class ImageInfo:
    path: Path
    format: str  # qemu driver name: raw qcow2 vdi vmdk vpc vhdx
    virtual_size: int
    disk_size: int  # bytes allocated on the host, the whole chain
    backing_chain: list[str] = field(default_factory=list)
    extents: list[str] = field(default_factory=list)
    subformat: str = ""
    warnings: list[str] = field(default_factory=list)
    snapshots: list[dict] = field(default_factory=list)  # a qcow2's internal ones, as inspect --json lists them
    at_snapshot: str = ""  # the internal snapshot to read instead of the current state (--snapshot)

    @property
    def name(self) -> str:
        """The format's own name, as --json reports it: raw qcow2 vdi vmdk vhd vhdx."""
        return NICE.get(self.format, self.format)

    @property
    def display_format(self) -> str:
        return f"{self.name} ({self.subformat})" if self.subformat else self.name


def sniff(path: Path) -> str:
    """The container format from magic numbers; 'raw' when none matches."""
    with open(path, "rb") as f:
        head = f.read(512)
        f.seek(0, os.SEEK_END)
        size = f.tell()
        tail = b""
        if size >= 512:
            f.seek(size - 512)
            tail = f.read(512)
    if head.startswith(b"QFI\xfb"):
        return "qcow2"
    if len(head) >= 0x44 and head[0x40:0x44] == b"\x7f\x10\xda\xbe":
        return "vdi"
    if head.startswith(b"KDMV") or head.startswith(b"COWD"):
        return "vmdk"
    if head.startswith(b"# Disk DescriptorFile") or b"createType=" in head[:512] and b"# Disk" in head:
        return "vmdk"
    if head.startswith(b"vhdxfile"):
        return "vhdx"
    if head.startswith(b"conectix") or tail.startswith(b"conectix"):
        return "vpc"
    return "raw"


def looks_like_disk(path: Path) -> bool:
    """Cheap content test for the file picker: a container format, a partition
    table, or a filesystem superblock at the start. Never trusts the name."""
    try:
        if not path.is_file() or path.stat().st_size < 4096:
            return False
        if sniff(path) != "raw":
            return True
        with open(path, "rb") as f:
            head = f.read(68 * 1024)
    except OSError:
        return False
    return (head[510:512] == b"\x55\xaa" or head[1080:1082] == b"\x53\xef" or head[:4] == b"XFSB"
            or head[65600:65608] == b"_BHRfS_M")
