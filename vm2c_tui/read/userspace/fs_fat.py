"""FAT (an EFI partition) through dissect.fat, shown as the kernel's vfat shows it with the
fstab's options (vfat.py, which the kernel route's mtools copy follows too), no xattrs.
FAT stores local time without a zone; it is taken as UTC, as mtools does with TZ unset."""

from __future__ import annotations

import calendar

from vm2c_tui.read.userspace.fsbase import Meta, Reader, open_fs, stream_chunks
from vm2c_tui.read.vfat import VfatOptions

FAT_EPOCH_NS = 315532800 * 1_000_000_000  # 1980-01-01, the earliest date FAT can hold
ATTR_READ_ONLY = 0x01


def _name(entry) -> str:
    """The long name, or the 8.3 name in the case Windows NT recorded (DIR_NTRes bits 3 and 4)."""
    if entry.ldirents:
        return entry.name
    base, _, ext = entry.short_name.partition(".")
    flags = entry.dirent.DIR_NTRes
    base = base.lower() if flags & 0x08 else base
    ext = ext.lower() if flags & 0x10 else ext
    return f"{base}.{ext}" if ext else base


class FatReader(Reader):
    def __init__(self, disk, offset: int, size: int, options: str = ""):
        from dissect.fat import FATFS

        self.fs = open_fs(FATFS, disk, offset, size, "FAT")
        self.opts = VfatOptions.parse(options)

    def used_bytes(self) -> int:
        return 0  # not counted by the kernel route either (its copy is not a mount)

    def root(self):
        return self.fs.root

    def children(self, node):
        for child in node.iterdir():
            if child.is_volume_id() or child.name in (".", ".."):
                continue
            yield _name(child).encode("utf-8", "surrogateescape"), child

    def meta(self, node) -> Meta:
        is_dir = node.is_directory()
        uid, gid = self.opts.uid, self.opts.gid
        if node is self.fs.root:  # the root directory has no date of its own
            return Meta("dir", self.opts.mode(True), uid, gid, FAT_EPOCH_NS, 0, 1, 0)
        try:
            mtime = calendar.timegm(node.mtime.timetuple()) * 1_000_000_000
        except (ValueError, OverflowError, AttributeError):
            mtime = 0
        read_only = bool(node.dirent.DIR_Attr & ATTR_READ_ONLY)
        mode = self.opts.mode(is_dir, read_only, node.short_name.partition(".")[2])
        return Meta("dir" if is_dir else "file", mode, uid, gid, mtime, 0 if is_dir else node.size, 1,
                    node.cluster or 0)  # FAT has no inodes: the first cluster names a directory

    def chunks(self, node):
        return stream_chunks(node.open(), node.size, "FAT")

    def xattrs(self, node) -> dict[str, bytes]:
        return {}
