"""XFS through dissect.xfs for inodes and directories; data runs and xattrs are
ours: dissect ignores the unwritten flag of an extent (stale data instead of
zeros) and reads no xattrs (docs/userspace-engine.md)."""

from __future__ import annotations

import stat
import struct

from vm2c_tui.read.userspace.fsbase import FsError, Meta, Reader, extent_chunks, kind_of, link_size_ok, open_fs, vfs_acl

ATTR_ROOT, ATTR_SECURE, ATTR_INCOMPLETE, ATTR_LOCAL = 0x02, 0x04, 0x80, 0x01
ACL_NAMES = {b"SGI_ACL_FILE": "system.posix_acl_access", b"SGI_ACL_DEFAULT": "system.posix_acl_default"}
LEAF_MAGICS = {0xFBEE: 32, 0x3BEE: 80}  # attr leaf v4 / v5 (CRC): header size


class XfsReader(Reader):
    def __init__(self, disk, offset: int, size: int):
        from dissect.xfs import XFS

        self.disk, self.offset, self.end = disk, offset, offset + size
        self.fs = open_fs(XFS, disk, offset, size, "xfs")
        self.bs = self.fs.block_size
        sb = self.fs.sb
        self.agblklog, self.agblocks = sb.sb_agblklog, sb.sb_agblocks

    def used_bytes(self) -> int:
        sb = self.fs.sb
        log = sb.sb_logblocks if sb.sb_logstart else 0  # an internal log: statfs leaves it out, so do we
        return max(sb.sb_dblocks - sb.sb_fdblocks - log, 0) * self.bs

    def root(self):
        return self.fs.get_inode(self.fs.sb.sb_rootino)

    def children(self, node):
        for child in node.iterdir():
            name = child.filename.encode("utf-8", "surrogateescape")
            if name not in (b".", b".."):
                yield name, child

    def meta(self, node) -> Meta:
        i = node.inode
        kind = kind_of(i.di_mode)
        nlink = i.di_nlink if i.di_version > 1 else i.di_onlink
        m = Meta(kind, stat.S_IMODE(i.di_mode), i.di_uid, i.di_gid, node.mtime_ns,
                 i.di_size if kind == "file" else 0, nlink, node.inum)
        if kind == "symlink":
            link_size_ok(i.di_size, "xfs", node.inum)
            m.link = node.link.encode("utf-8", "surrogateescape")
        elif kind in ("char", "block"):
            (dev,) = struct.unpack(">I", node.datafork().read(4))
            m.rdev = ((dev >> 18) & 0x3FFF, dev & 0x3FFFF)
        return m

    def chunks(self, node):
        if node.inode.di_format == 1:  # local: data inside the inode
            yield node.datafork().read(node.inode.di_size)
        else:
            yield from extent_chunks(self.disk, self.extents(node), "xfs")

    def extents(self, node) -> list[tuple[int | None, int]]:
        """(byte offset in the disk or None for zeros, length) pieces of the file's data;
        holes and unwritten (preallocated, never written) extents read as zeros."""
        if node.inode.di_format == 1:
            return []
        out: list[tuple[int | None, int]] = []
        left, pos = node.inode.di_size, 0  # pos: the file block reached
        for off, fsb, count, unwritten in sorted(node._iter_blocks()):
            if left <= 0:
                break
            if off > pos:
                gap = min((off - pos) * self.bs, left)
                out.append((None, gap))
                left -= gap
            n = min(count * self.bs, left)
            if n > 0:
                agno, agbno = fsb >> self.agblklog, fsb & ((1 << self.agblklog) - 1)
                at = self.offset + (agno * self.agblocks + agbno) * self.bs
                if not unwritten and not self.offset <= at <= self.end - n:  # another partition's data
                    raise FsError(f"xfs: an extent at byte {at - self.offset} lies past the filesystem's "
                                  f"{self.end - self.offset} bytes: corrupt or crafted")
                out.append((None if unwritten else at, n))
                left -= n
            pos = off + count
        if left > 0:
            out.append((None, left))
        return out

    def xattrs(self, node) -> dict[str, bytes]:
        i = node.inode
        if not i.di_forkoff:
            return {}
        out: dict[str, bytes] = {}
        if i.di_aformat == 1:
            fork = node.attrfork().read()
            total, count = struct.unpack_from(">HB", fork, 0)
            pos = 4
            for _ in range(count):
                namelen, valuelen, flags = struct.unpack_from(">BBB", fork, pos)
                name = fork[pos + 3:pos + 3 + namelen]
                value = fork[pos + 3 + namelen:pos + 3 + namelen + valuelen]
                _put(out, flags, name, value)
                pos += 3 + namelen + valuelen
        elif i.di_aformat == 2:
            self._leaf_attrs(node, out)
        else:
            raise FsError("xfs: xattrs in a B+tree attribute fork are not supported")
        return out

    def _leaf_attrs(self, node, out: dict[str, bytes]) -> None:
        from dissect.xfs.xfs import parse_fsblock

        count = node.attr_extents
        if count == 0:  # an attribute fork left empty after its last xattr went
            return
        raw = node.attrfork().read(16 * count)
        extents = [parse_fsblock(raw[k * 16:(k + 1) * 16]) for k in range(count)]
        if len(extents) != 1 or extents[0][0] != 0:
            raise FsError("xfs: xattrs in a multi-block (node) attribute fork are not supported")
        _, fsb, blocks, _ = extents[0]
        agno, agbno = fsb >> self.agblklog, fsb & ((1 << self.agblklog) - 1)
        blk = self.disk.pread(blocks * self.bs, self.offset + (agno * self.agblocks + agbno) * self.bs)
        (magic,) = struct.unpack_from(">H", blk, 8)
        if magic not in LEAF_MAGICS:
            raise FsError("xfs: xattrs in a node-format attribute fork are not supported")
        hdr = LEAF_MAGICS[magic]
        (n,) = struct.unpack_from(">H", blk, 56 if magic == 0x3BEE else 12)
        for k in range(n):
            _, nameidx, flags = struct.unpack_from(">IHB", blk, hdr + 8 * k)
            if flags & ATTR_INCOMPLETE:
                continue
            if not flags & ATTR_LOCAL:
                raise FsError("xfs: an xattr value kept in remote blocks is not supported")
            valuelen, namelen = struct.unpack_from(">HB", blk, nameidx)
            name = blk[nameidx + 3:nameidx + 3 + namelen]
            _put(out, flags, name, blk[nameidx + 3 + namelen:nameidx + 3 + namelen + valuelen])


def _put(out: dict[str, bytes], flags: int, name: bytes, value: bytes) -> None:
    if flags & ATTR_ROOT and name in ACL_NAMES:  # the kernel lists both names: keep both, as tar does
        out[ACL_NAMES[name]] = _xfs_acl(value)
    if flags & ATTR_ROOT:
        out["trusted." + name.decode("utf-8", "surrogateescape")] = value
    elif flags & ATTR_SECURE:
        out["security." + name.decode("utf-8", "surrogateescape")] = value
    else:
        out["user." + name.decode("utf-8", "surrogateescape")] = value


def _xfs_acl(value: bytes) -> bytes:
    """XFS keeps ACLs as big-endian (count; tag, id, perm) records."""
    (count,) = struct.unpack_from(">I", value, 0)
    if 4 + 12 * count > len(value):
        raise FsError("xfs: a corrupt ACL")
    entries = []
    for k in range(count):
        tag, ident, perm = struct.unpack_from(">IIH", value, 4 + 12 * k)
        entries.append((tag, perm, ident))
    return vfs_acl(entries)
