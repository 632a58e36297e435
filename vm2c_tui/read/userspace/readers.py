"""The user-space reader for a filesystem type."""

from __future__ import annotations

from vm2c_tui.errors import Vm2cError


def open_reader(disk, fstype: str, offset: int, size: int, subvol: str = "", options: str = ""):
    if fstype in ("ext2", "ext3", "ext4"):
        from vm2c_tui.read.userspace.fs_ext import ExtReader

        return ExtReader(disk, offset, size)
    if fstype == "xfs":
        from vm2c_tui.read.userspace.fs_xfs import XfsReader

        return XfsReader(disk, offset, size)
    if fstype == "btrfs":
        from vm2c_tui.read.userspace.fs_btrfs import BtrfsReader

        return BtrfsReader(disk, offset, size, subvol)
    if fstype == "vfat":
        from vm2c_tui.read.userspace.fs_fat import FatReader

        return FatReader(disk, offset, size, options)
    raise Vm2cError(f"the user-space engine cannot read {fstype or 'this'} filesystem")
