"""What every user-space filesystem reader gives the tar writer."""

from __future__ import annotations

import stat
import struct
from dataclasses import dataclass

from vm2c_tui.errors import Vm2cError

KINDS = {stat.S_IFDIR: "dir", stat.S_IFREG: "file", stat.S_IFLNK: "symlink", stat.S_IFCHR: "char",
         stat.S_IFBLK: "block", stat.S_IFIFO: "fifo", stat.S_IFSOCK: "socket"}
ACL_UNDEFINED_ID = 0xFFFFFFFF
ACL_SHORT_TAGS = (0x01, 0x04, 0x10, 0x20)  # USER_OBJ GROUP_OBJ MASK OTHER: no id on disk


@dataclass(slots=True)
class Meta:
    kind: str
    mode: int  # permission bits incl. setuid/setgid/sticky
    uid: int
    gid: int
    mtime_ns: int
    size: int
    nlink: int
    ino: int
    rdev: tuple[int, int] = (0, 0)
    link: bytes = b""


MAX_LINK = 4096  # PATH_MAX: no kernel makes a longer symlink; a crafted one is not read at all


def link_size_ok(size: int, what: str, inum) -> None:
    if size > MAX_LINK:
        raise FsError(f"{what}: a symlink of {size} bytes (inode {inum}), over {MAX_LINK}: the filesystem is "
                      "corrupt or crafted; refusing to archive it")


def kind_of(mode: int) -> str:
    return KINDS.get(stat.S_IFMT(mode), "other")


class FsError(Vm2cError):
    pass


class Reader:
    """What every filesystem reader offers the walk: root(), children(node) -> (name, node),
    meta(node), xattrs(node), chunks(node), used_bytes(); lookup comes from children."""

    def lookup(self, node, name: bytes):
        return next((c for n, c in self.children(node) if n == name), None)


def open_fs(factory, disk, offset: int, size: int, what: str):
    """A dissect filesystem over DISK[offset:offset+size]; its failure as one FsError line."""
    from vm2c_tui.source.diskimage import Slice

    try:
        return factory(Slice(disk, offset, size))
    except Exception as exc:
        raise FsError(f"{what} filesystem unreadable: {exc}") from None


def extent_chunks(disk, extents, what: str, step: int = 1 << 20):
    """File data from (disk offset or None for zeros, length) pieces, in chunks of at most STEP."""
    for at, n in extents:
        while n > 0:
            k = min(n, step)
            if at is None:
                yield bytes(k)
            else:
                data = disk.pread(k, at)
                if len(data) < k:
                    raise FsError(f"{what}: a file's data lies past the end of the image (truncated?)")
                yield data
                at += k
            n -= k


def vfs_acl(entries: list[tuple[int, int, int]]) -> bytes:
    """(tag, perm, id) entries as the kernel's system.posix_acl_* xattr value (version 2)."""
    out = [struct.pack("<I", 2)]
    for tag, perm, ident in entries:
        out.append(struct.pack("<HHI", tag, perm, ACL_UNDEFINED_ID if tag in ACL_SHORT_TAGS else ident))
    return b"".join(out)


def decode_new_dev(v: int) -> tuple[int, int]:
    """Linux new_encode_dev() as ext4 (i_block[1]) and btrfs store it."""
    return (v & 0xFFF00) >> 8, (v & 0xFF) | ((v >> 12) & 0xFFF00)


def stream_chunks(fh, size: int, what: str, step: int = 1 << 20):
    """SIZE bytes of a file object in chunks; a short read is an error, never a short member."""
    left = size
    while left > 0:
        data = fh.read(min(step, left))
        if not data:
            raise FsError(f"{what}: a file's data ends early")
        yield data
        left -= len(data)
