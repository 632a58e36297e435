"""ext2/3/4: dissect.extfs finds the superblock and group descriptors; inodes,
extent trees, directories and xattrs are parsed here, for speed and where dissect
goes wrong (docs/userspace-engine.md): inline data, xattrs on 128-byte inodes,
the ACL format, dates before 1970."""

from __future__ import annotations

import stat
import struct

from vm2c_tui.read.userspace.fsbase import (
    FsError,
    Meta,
    Reader,
    decode_new_dev,
    extent_chunks,
    kind_of,
    link_size_ok,
    open_fs,
    vfs_acl,
)

INLINE_DATA_FL = 0x10000000
EXTENTS_FL = 0x80000
ACL_NAMES = {2: "system.posix_acl_access", 3: "system.posix_acl_default"}
PREFIXES = {1: "user.", 4: "trusted.", 6: "security.", 7: "system.", 8: "system.richacl"}
XATTR_MAGIC = 0xEA020000


INODE = struct.Struct("<HHIIIIIHHII")  # mode uid size_lo atime ctime mtime dtime gid links blocks_lo flags
EXTENT_MAGIC = 0xF30A
MAX_DIR = 256 << 20  # bytes of directory entries: ~4 million names; more is a crafted image


class Ino:
    """One inode, parsed with struct on first use (dissect's cstruct parse was most of the time)."""

    __slots__ = ("inum", "raw", "mode", "uid", "gid", "size", "links", "flags", "mtime_ns", "block", "acl_block")

    def __init__(self, inum: int):
        self.inum = inum
        self.raw = None


class ExtReader(Reader):
    def __init__(self, disk, offset: int, size: int):
        from dissect.extfs import ExtFS

        self.disk, self.offset = disk, offset
        self.fs = open_fs(ExtFS, disk, offset, size, "ext")
        sb = self.fs.sb
        self.bs = self.fs.block_size
        self.inode_size = sb.s_inode_size
        self.per_group = sb.s_inodes_per_group
        self.inodes_count = sb.s_inodes_count
        # blocks that lie inside this filesystem's own byte range: an extent pointing past it
        # would read another partition (or past the disk) into the archive
        self.blocks = min(size // self.bs,
                          sb.s_blocks_count_lo | (getattr(sb, "s_blocks_count_hi", 0) << 32 if self._64bit() else 0))
        self._tables: dict[int, int] = {}

    def used_bytes(self) -> int:
        sb = self.fs.sb
        blocks = sb.s_blocks_count_lo | (getattr(sb, "s_blocks_count_hi", 0) << 32 if self._64bit() else 0)
        free = sb.s_free_blocks_count_lo | (getattr(sb, "s_free_blocks_count_hi", 0) << 32 if self._64bit() else 0)
        return max(blocks - free - self._overhead(blocks), 0) * self.bs

    def _overhead(self, blocks: int) -> int:
        """Blocks of metadata (inode tables, bitmaps, journal), which statfs leaves out of "used"
        as the kernel route counts it: the two engines estimate the same archive size."""
        sb = self.fs.sb
        groups = -(-(blocks - sb.s_first_data_block) // sb.s_blocks_per_group)
        tables = groups * -(-(self.per_group * self.inode_size) // self.bs)
        journal = 0
        if sb.s_feature_compat & 0x4 and sb.s_journal_inum:
            journal = -(-self._load(Ino(sb.s_journal_inum)).size // self.bs)
        return tables + 2 * groups + journal

    def _64bit(self) -> bool:
        return bool(self.fs.sb.s_feature_incompat & 0x80)

    # -- inodes ------------------------------------------------------------
    def root(self) -> Ino:
        return Ino(2)

    def _load(self, node: Ino) -> Ino:
        if node.raw is not None:
            return node
        group, index = divmod(node.inum - 1, self.per_group)
        table = self._tables.get(group)
        if table is None:
            gd = self.fs._read_group_desc(group)
            table = gd.bg_inode_table_lo | (getattr(gd, "bg_inode_table_hi", 0) << 32 if self._64bit() else 0)
            self._tables[group] = table
        raw = self.disk.pread(self.inode_size, self.offset + table * self.bs + index * self.inode_size)
        if len(raw) < 128:
            raise FsError(f"ext: inode {node.inum} lies past the end of the image (truncated?)")
        mode, uid, size_lo, _, _, mtime, _, gid, links, _, flags = INODE.unpack_from(raw, 0)
        acl_lo, size_hi = struct.unpack_from("<I I", raw, 104)
        acl_hi, uid_hi, gid_hi = struct.unpack_from("<HHH", raw, 118)
        sec = mtime - (1 << 32) if mtime >= 1 << 31 else mtime  # signed: dates before 1970
        ns = 0
        if self.inode_size > 128 and len(raw) >= 140 and struct.unpack_from("<H", raw, 128)[0] >= 12:
            (extra,) = struct.unpack_from("<I", raw, 136)
            sec += (extra & 3) << 32
            ns = extra >> 2
        node.raw, node.mode, node.flags, node.links = raw, mode, flags, links
        node.uid, node.gid = uid | (uid_hi << 16), gid | (gid_hi << 16)
        node.size = size_lo | (size_hi << 32)
        node.mtime_ns = sec * 1_000_000_000 + ns
        node.block = raw[40:100]
        node.acl_block = acl_lo | (acl_hi << 32)
        return node

    def meta(self, node: Ino) -> Meta:
        i = self._load(node)
        kind = kind_of(i.mode)
        m = Meta(kind, stat.S_IMODE(i.mode), i.uid, i.gid, i.mtime_ns, i.size if kind == "file" else 0,
                 i.links, i.inum)
        if kind == "symlink":
            link_size_ok(i.size, "ext", i.inum)
            m.link = self.read_all(i)[:i.size]
        elif kind in ("char", "block"):
            b0, b1 = struct.unpack_from("<II", i.block, 0)
            m.rdev = ((b0 >> 8) & 0xFF, b0 & 0xFF) if b0 else decode_new_dev(b1)
        return m

    # -- directories ---------------------------------------------------------
    def children(self, node: Ino):
        i = self._load(node)
        if i.size > MAX_DIR:
            raise FsError(f"ext: a directory of {i.size} bytes (inode {i.inum}): corrupt or crafted")
        if i.flags & INLINE_DATA_FL:
            data = i.block[4:] + self._inline_tail(i)
        else:
            data = b"".join(self.chunks(i))
        pos, end = 0, len(data)
        while pos + 8 <= end:
            inum, rec_len, name_len = struct.unpack_from("<IHB", data, pos)
            if rec_len < 8 or pos + rec_len > end:
                break
            name = data[pos + 8:pos + 8 + name_len]
            if inum and name not in (b".", b".."):
                if not 0 < inum <= self.inodes_count:
                    raise FsError(f"ext: directory entry points at inode {inum}, outside the filesystem")
                yield name, Ino(inum)
            pos += rec_len

    # -- data ------------------------------------------------------------------
    def read_all(self, node: Ino) -> bytes:
        return b"".join(self.chunks(node))

    def extents(self, node: Ino) -> list[tuple[int | None, int]]:
        """(byte offset in the disk or None for zeros, length) pieces of the file's data."""
        i = self._load(node)
        if i.flags & INLINE_DATA_FL or (stat.S_ISLNK(i.mode) and i.size < 60 and not self._has_blocks(i)):
            return []
        runs = self._extent_runs(i) if i.flags & EXTENTS_FL else self._indirect_runs(i)
        out, pos, bs, left = [], 0, self.bs, i.size
        for logical, physical, count in sorted(runs):
            if left <= 0:
                break
            if logical > pos:
                gap = min((logical - pos) * bs, left)
                out.append((None, gap))
                left -= gap
            n = min(count * bs, left)
            if n > 0:
                out.append((None if physical is None else self.offset + physical * bs, n))
                left -= n
            pos = logical + count
        if left > 0:
            out.append((None, left))
        return out

    def _has_blocks(self, i: Ino) -> bool:
        return bool(struct.unpack_from("<I", i.raw, 28)[0])

    def chunks(self, node: Ino):
        i = self._load(node)
        if i.flags & INLINE_DATA_FL:
            yield (i.block + self._inline_tail(i))[:i.size]
        elif stat.S_ISLNK(i.mode) and i.size < 60 and not self._has_blocks(i):
            yield i.block[:i.size]
        else:
            yield from extent_chunks(self.disk, self.extents(i), "ext")

    def _extent_runs(self, i: Ino) -> list[tuple[int, int | None, int]]:
        runs: list[tuple[int, int | None, int]] = []
        self._walk_extents(i.block, runs, 0, set())
        return runs

    def _walk_extents(self, buf: bytes, runs: list, depth: int, seen: set[int]) -> None:
        """SEEN: index blocks already read. A crafted index naming the same child 340 times, 8
        levels deep, would otherwise be 340**8 reads; no real tree names a block twice."""
        magic, entries, _, level = struct.unpack_from("<HHHH", buf, 0)
        if magic != EXTENT_MAGIC or depth > 8 or 12 + 12 * entries > len(buf):
            raise FsError("ext: a corrupt extent tree")
        for k in range(entries):
            base = 12 + 12 * k
            if level == 0:
                logical, length, hi, lo = struct.unpack_from("<IHHI", buf, base)
                if length > 32768:  # uninitialised (preallocated): reads as zeros
                    runs.append((logical, None, length - 32768))
                else:
                    physical = lo | (hi << 32)
                    if physical + length > self.blocks:
                        raise FsError(f"ext: an extent at block {physical} lies past the filesystem's "
                                      f"{self.blocks} blocks: corrupt or crafted")
                    runs.append((logical, physical, length))
            else:
                _, lo, hi = struct.unpack_from("<IIH", buf, base)
                block = lo | (hi << 32)
                if block in seen or block >= self.blocks:
                    raise FsError(f"ext: extent tree block {block} read twice or past the filesystem: "
                                  "corrupt or crafted")
                seen.add(block)
                child = self.disk.pread(self.bs, self.offset + block * self.bs)
                self._walk_extents(child, runs, depth + 1, seen)

    def _indirect_runs(self, i: Ino) -> list[tuple[int, int | None, int]]:
        """ext2/3 block maps: rare now; dissect's reader does them."""
        runs, logical = [], 0
        for block, count in self.fs.get_inode(i.inum).dataruns():
            runs.append((logical, block or None, count))
            logical += count
        return runs

    def _inline_tail(self, i: Ino) -> bytes:
        return dict(self._raw_xattrs(i)).get((7, b"data"), b"")

    def xattrs(self, node: Ino) -> dict[str, bytes]:
        out = {}
        for (index, name), value in self._raw_xattrs(self._load(node)):
            if index in ACL_NAMES:
                out[ACL_NAMES[index]] = _ext_acl(value)
            elif index == 7 and name == b"data":
                continue  # inline data, not an xattr
            elif index in PREFIXES:
                out[PREFIXES[index] + name.decode("utf-8", "surrogateescape")] = value
        return out

    def _raw_xattrs(self, i: Ino):
        """((name index, name), value) from the inode body and the xattr block; parsed here
        because dissect raised on 128-byte inodes."""
        raw = i.raw
        if self.inode_size > 128 and len(raw) >= 132:
            (extra,) = struct.unpack_from("<H", raw, 128)
            body = raw[128 + extra:]
            if len(body) >= 4 and struct.unpack_from("<I", body, 0)[0] == XATTR_MAGIC:
                yield from _entries(body, 4, 4)
        if i.acl_block:
            data = self.disk.pread(self.bs, self.offset + i.acl_block * self.bs)
            if len(data) >= 32 and struct.unpack_from("<I", data, 0)[0] == XATTR_MAGIC:
                yield from _entries(data, 32, 0)


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

