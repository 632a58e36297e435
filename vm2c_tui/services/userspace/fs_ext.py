"""ext2/3/4 through dissect.extfs, with our own fixes where it goes wrong
(docs/userspace-engine.md): inline data, xattrs on 128-byte inodes, ACL format."""

from __future__ import annotations

import stat
import struct

from .fsbase import FsError, Meta, decode_new_dev, kind_of, vfs_acl

INLINE_DATA_FL = 0x10000000
EXTENTS_FL = 0x80000
ACL_NAMES = {2: "system.posix_acl_access", 3: "system.posix_acl_default"}
PREFIXES = {1: "user.", 4: "trusted.", 6: "security.", 7: "system.", 8: "system.richacl"}
XATTR_MAGIC = 0xEA020000


class ExtReader:
    def __init__(self, disk, offset: int, size: int):
        from dissect.extfs import ExtFS

        from .images import Slice

        self.disk, self.offset = disk, offset
        try:
            self.fs = ExtFS(Slice(disk, offset, size))
        except Exception as exc:
            raise FsError(f"ext filesystem unreadable: {exc}") from None
        self.bs = self.fs.block_size
        self.inode_size = self.fs.sb.s_inode_size

    def used_bytes(self) -> int:
        sb = self.fs.sb
        blocks = sb.s_blocks_count_lo | (getattr(sb, "s_blocks_count_hi", 0) << 32 if self._64bit() else 0)
        free = sb.s_free_blocks_count_lo | (getattr(sb, "s_free_blocks_count_hi", 0) << 32 if self._64bit() else 0)
        return max(blocks - free, 0) * self.bs

    def _64bit(self) -> bool:
        return bool(self.fs.sb.s_feature_incompat & 0x80)

    def root(self):
        return self.fs.get_inode(2)

    def lookup(self, node, name: bytes):
        for n, child in self.children(node):
            if n == name:
                return child
        return None

    def children(self, node):
        ino = node.inode
        if ino.i_flags & INLINE_DATA_FL:
            data = bytes(ino.i_block)[4:] + self._inline_tail(node)
        else:
            data = b"".join(self._chunks(node, node.size))
        pos, end = 0, len(data)
        while pos + 8 <= end:
            inum, rec_len, name_len, ftype = struct.unpack_from("<IHBB", data, pos)
            if rec_len < 8 or pos + rec_len > end:
                break
            name = data[pos + 8:pos + 8 + name_len]
            if inum and name not in (b".", b".."):
                if not 0 < inum <= self.fs.sb.s_inodes_count:
                    raise FsError(f"ext: directory entry points at inode {inum}, outside the filesystem")
                yield name, self.fs.get_inode(inum)
            pos += rec_len

    def meta(self, node) -> Meta:
        i = node.inode
        mode = i.i_mode
        kind = kind_of(mode)
        size = node.size
        m = Meta(kind, stat.S_IMODE(mode), i.i_uid | (i.i_uid_high << 16), i.i_gid | (i.i_gid_high << 16),
                 node.mtime_ns, size if kind == "file" else 0, i.i_links_count, node.inum)
        if kind == "symlink":
            m.link = self.read_all(node)
        elif kind in ("char", "block"):
            b0, b1 = struct.unpack_from("<II", bytes(i.i_block), 0)
            m.rdev = ((b0 >> 8) & 0xFF, b0 & 0xFF) if b0 else decode_new_dev(b1)
        return m

    def read_all(self, node) -> bytes:
        return b"".join(self.chunks(node))

    def chunks(self, node):
        i = node.inode
        size = node.size
        if i.i_flags & INLINE_DATA_FL:
            yield (bytes(i.i_block) + self._inline_tail(node))[:size]
        elif stat.S_ISLNK(i.i_mode) and size < 60 and not (i.i_flags & EXTENTS_FL and i.i_blocks_lo):
            yield bytes(i.i_block)[:size]
        else:
            yield from self._chunks(node, size)

    def _chunks(self, node, size: int, step: int = 1 << 20):
        left = size
        for block, count in node.dataruns():
            if left <= 0:
                break
            n = min(count * self.bs, left)
            if block is None:
                while n > 0:
                    k = min(n, step)
                    yield bytes(k)
                    n -= k
                    left -= k
                continue
            pos = self.offset + block * self.bs
            while n > 0:
                k = min(n, step)
                data = self.disk.pread(k, pos)
                if len(data) < k:
                    raise FsError("ext: a file's data lies past the end of the image (truncated?)")
                yield data
                pos += k
                n -= k
                left -= k
        while left > 0:
            k = min(left, step)
            yield bytes(k)
            left -= k

    def _inline_tail(self, node) -> bytes:
        return dict(self._raw_xattrs(node)).get((7, b"data"), b"")

    def xattrs(self, node) -> dict[str, bytes]:
        out = {}
        for (index, name), value in self._raw_xattrs(node):
            if index in ACL_NAMES:
                out[ACL_NAMES[index]] = _ext_acl(value)
            elif index == 7 and name == b"data":
                continue  # inline data, not an xattr
            elif index in PREFIXES:
                out[PREFIXES[index] + name.decode("utf-8", "surrogateescape")] = value
        return out

    def _raw_xattrs(self, node):
        """((name index, name), value) from the inode body and the xattr block; parsed here
        because dissect raised on 128-byte inodes."""
        i = node.inode
        raw = self._inode_bytes(node)
        if self.inode_size > 128 and len(raw) >= 132:
            (extra,) = struct.unpack_from("<H", raw, 128)
            body = raw[128 + extra:]
            if len(body) >= 4 and struct.unpack_from("<I", body, 0)[0] == XATTR_MAGIC:
                yield from _entries(body, 4, 4)
        block = i.i_file_acl_lo | (i.i_file_acl_high << 32)
        if block:
            data = self.disk.pread(self.bs, self.offset + block * self.bs)
            if len(data) >= 32 and struct.unpack_from("<I", data, 0)[0] == XATTR_MAGIC:
                yield from _entries(data, 32, 0)

    def _inode_bytes(self, node) -> bytes:
        fs = self.fs
        group, index = divmod(node.inum - 1, fs.sb.s_inodes_per_group)
        gd = fs._read_group_desc(group)
        table = gd.bg_inode_table_lo | (getattr(gd, "bg_inode_table_hi", 0) << 32 if self._64bit() else 0)
        return self.disk.pread(self.inode_size, self.offset + table * self.bs + index * self.inode_size)


def _entries(buf: bytes, first: int, value_base: int):
    """ext4_xattr_entry records from FIRST; values at VALUE_BASE + e_value_offs."""
    pos = first
    while pos + 16 <= len(buf):
        name_len, index, value_offs, value_inum, value_size = struct.unpack_from("<BBHII", buf, pos)
        if name_len == 0 and index == 0 and value_offs == 0:
            break
        name = buf[pos + 16:pos + 16 + name_len]
        if value_inum:
            raise FsError("ext: an xattr value stored in its own inode (ea_inode) is not supported")
        start = value_base + value_offs
        if start + value_size > len(buf):
            raise FsError("ext: an xattr value lies outside its block")
        yield (index, name), buf[start:start + value_size]
        pos += (16 + name_len + 3) & ~3


def _ext_acl(value: bytes) -> bytes:
    """ext4's compact on-disk ACL (version 1) in the kernel's xattr format."""
    if len(value) < 4 or struct.unpack_from("<I", value, 0)[0] != 1:
        raise FsError("ext: an ACL with an unknown on-disk version")
    entries, pos = [], 4
    while pos + 4 <= len(value):
        tag, perm = struct.unpack_from("<HH", value, pos)
        if tag in (0x02, 0x08):  # USER, GROUP: with an id
            (ident,) = struct.unpack_from("<I", value, pos + 4)
            pos += 8
        else:
            ident = 0
            pos += 4
        entries.append((tag, perm, ident))
    return vfs_acl(entries)

