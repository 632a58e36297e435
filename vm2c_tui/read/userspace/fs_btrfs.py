"""btrfs through dissect.btrfs; xattrs (which it does not read) from the
subvolume's XATTR_ITEMs here, and mtimes read signed. SUBVOL picks the subvolume
mounted as the top. zstd extents need backports.zstd before Python 3.14 (in the extra)."""

from __future__ import annotations

import stat
import struct

from vm2c_tui.read.userspace.fsbase import (
    FsError,
    Meta,
    Reader,
    decode_new_dev,
    kind_of,
    link_size_ok,
    open_fs,
    stream_chunks,
)

XATTR_ITEM_KEY = 24
DIR_ITEM = struct.Struct("<QBQQHHB")  # location key (objectid, type, offset), transid, data_len, name_len, type


def _signed_ns(ts) -> int:
    """btrfs keeps seconds as a signed 64-bit number; dissect reads it unsigned (dates before 1970)."""
    sec = ts.sec - (1 << 64) if ts.sec >= 1 << 63 else ts.sec
    return sec * 1_000_000_000 + ts.nsec


class BtrfsReader(Reader):
    def __init__(self, disk, offset: int, size: int, subvol: str = ""):
        from dissect.btrfs import Btrfs

        self.fs = open_fs(Btrfs, disk, offset, size, "btrfs")
        try:
            if subvol:
                found = self.fs.find_subvolume(subvol if subvol.startswith("/") else "/" + subvol)
                found = found or self.fs.find_subvolume(subvol.strip("/"))
                if found is None:
                    raise FsError(f"btrfs: no subvolume '{subvol}'")
                self.top = found.root
            else:
                self.top = self.fs.get("/")
        except FsError:
            raise
        except Exception as exc:
            raise FsError(f"btrfs filesystem unreadable: {exc}") from None

    def used_bytes(self) -> int:
        return self.fs.sb.bytes_used

    def root(self):
        return self.top

    def children(self, node):
        for name, child in node.iterdir():
            if name not in (".", ".."):
                yield name.encode("utf-8", "surrogateescape"), child

    def meta(self, node) -> Meta:
        item = node.inode
        kind = kind_of(item.mode)
        m = Meta(kind, stat.S_IMODE(item.mode), item.uid, item.gid, _signed_ns(item.mtime),
                 item.size if kind == "file" else 0, item.nlink, (node.subvolume.objectid, node.inum))
        if kind == "symlink":
            link_size_ok(item.size, "btrfs", node.inum)
            m.link = node.link.encode("utf-8", "surrogateescape")
        elif kind in ("char", "block"):
            m.rdev = decode_new_dev(item.rdev)
        return m

    def chunks(self, node):
        size = node.inode.size
        return stream_chunks(node.open(), size, "btrfs") if size else iter(())

    def xattrs(self, node) -> dict[str, bytes]:
        out = {}
        cursor = node.subvolume.tree.cursor()
        for _, data in cursor.iter(node.inum, XATTR_ITEM_KEY, 0, ignore_offset=True):
            buf, pos = bytes(data), 0
            while pos + DIR_ITEM.size <= len(buf):
                *_, data_len, name_len, _t = DIR_ITEM.unpack_from(buf, pos)
                start = pos + DIR_ITEM.size
                name = buf[start:start + name_len]
                out[name.decode("utf-8", "surrogateescape")] = buf[start + name_len:start + name_len + data_len]
                pos = start + name_len + data_len
        return out
