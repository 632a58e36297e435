"""A PAX tar writer for the user-space engine: what GNU tar --format=pax
--numeric-owner --xattrs writes, member for member.

Python's tarfile writes no xattrs and its stream mode is quadratic with large
buffers, so headers are built here. PAX records carry long or non-ASCII names,
sub-second mtimes, large ids and sizes, and SCHILY.xattr.* values byte for byte.
No GNU sparse members: Docker cannot save a layer holding them (see archive.py).
"""

from __future__ import annotations

from vm2c_tui.read.userspace.fsbase import Meta

BLOCK = 512
TYPES = {"file": b"0", "symlink": b"2", "char": b"3", "block": b"4", "dir": b"5", "fifo": b"6"}
MAX_OCTAL = {8: 0o7777777, 12: 0o77777777777}


def _octal(n: int, width: int) -> bytes:
    return b"%0*o\0" % (width - 1, n)


def _record(key: bytes, value: bytes) -> bytes:
    body = b" " + key + b"=" + value + b"\n"
    n = len(body) + 1
    while len(str(n).encode()) + len(body) != n:
        n = len(str(n).encode()) + len(body)
    return str(n).encode() + body


def _ascii_fits(b: bytes, limit: int) -> bool:
    return len(b) <= limit and b.isascii()


def _header(name: bytes, mode: int, uid: int, gid: int, size: int, mtime: int, typeflag: bytes,
            linkname: bytes = b"", dev: tuple[int, int] = (0, 0)) -> bytes:
    h = bytearray(BLOCK)
    h[0:len(name)] = name
    h[100:108] = _octal(mode, 8)
    h[108:116] = _octal(uid, 8)
    h[116:124] = _octal(gid, 8)
    h[124:136] = _octal(size, 12)
    h[136:148] = _octal(mtime, 12)
    h[148:156] = b" " * 8
    h[156:157] = typeflag
    h[157:157 + len(linkname)] = linkname
    h[257:265] = b"ustar\x0000"
    h[329:337] = _octal(dev[0], 8)
    h[337:345] = _octal(dev[1], 8)
    h[148:156] = b"%06o\0 " % sum(h)
    return bytes(h)


def _mtime(ns: int) -> tuple[int, bytes | None]:
    """The header's whole seconds, and a PAX mtime record when they are not exact."""
    sec, frac = divmod(ns, 1_000_000_000)
    if frac == 0 and 0 <= sec <= MAX_OCTAL[12]:
        return sec, None
    whole, f = divmod(abs(ns), 1_000_000_000)
    text = (b"-" if ns < 0 else b"") + b"%d" % whole + ((b".%09d" % f).rstrip(b"0") if f else b"")
    return min(max(sec, 0), MAX_OCTAL[12]), text


def sparse_map(regions: list[tuple[int, int]], size: int) -> bytes:
    """The GNU sparse 1.0 map that starts the member's data: count, then offset/size pairs."""
    if not regions or regions[-1][0] + regions[-1][1] < size:
        regions = [*regions, (size, 0)]  # a hole at the end: GNU tar marks it the same way
    text = b"%d\n" % len(regions) + b"".join(b"%d\n%d\n" % r for r in regions)
    return text + padding(len(text))


def member(name: bytes, meta: Meta, xattrs: dict[str, bytes] | None = None,
           hardlink_to: bytes | None = None, sparse: bytes | None = None) -> bytes:
    """The header block(s) of one member (PAX extended header first when needed).
    SPARSE is the member's sparse map: the header then describes map + stored data."""
    records = []
    if sparse is not None:
        real, stored = meta.size, sum(int(n) for n in sparse.rstrip(b"\0").split(b"\n")[2::2] if n)
        records += [_record(b"GNU.sparse.major", b"1"), _record(b"GNU.sparse.minor", b"0"),
                    _record(b"GNU.sparse.name", name), _record(b"GNU.sparse.realsize", str(real).encode())]
        dirname, _, base = name.rpartition(b"/")
        name = (dirname or b".") + b"/GNUSparseFile.0/" + base
        meta = Meta(meta.kind, meta.mode, meta.uid, meta.gid, meta.mtime_ns, len(sparse) + stored, meta.nlink,
                    meta.ino)
    typeflag = b"1" if hardlink_to is not None else TYPES[meta.kind]
    linkname = hardlink_to if hardlink_to is not None else meta.link
    size = meta.size if typeflag == b"0" else 0
    short_name = name
    if not _ascii_fits(name, 100):
        records.append(_record(b"path", name))
        short_name = name[-100:].decode("ascii", "replace").encode("ascii", "replace")[-100:]
    if linkname and not _ascii_fits(linkname, 100):
        records.append(_record(b"linkpath", linkname))
        linkname = b""
    mtime, mtext = _mtime(meta.mtime_ns)
    if mtext is not None:
        records.append(_record(b"mtime", mtext))
    uid, gid = meta.uid, meta.gid
    if uid > MAX_OCTAL[8]:
        records.append(_record(b"uid", str(uid).encode()))
        uid = 0
    if gid > MAX_OCTAL[8]:
        records.append(_record(b"gid", str(gid).encode()))
        gid = 0
    if size > MAX_OCTAL[12]:
        records.append(_record(b"size", str(size).encode()))
    for key, value in sorted((xattrs or {}).items()):
        records.append(_record(b"SCHILY.xattr." + key.encode("utf-8", "surrogateescape"), value))
    out = []
    if records:
        if any(not _utf8(r) for r in records if r.split(b"=", 1)[0].split(b" ", 1)[1] in (b"path", b"linkpath")):
            records.insert(0, _record(b"hdrcharset", b"BINARY"))
        body = b"".join(records)
        base = name.rstrip(b"/").rsplit(b"/", 1)[-1][:80]
        pax_name = (b"./PaxHeaders/" + base).decode("ascii", "replace").encode("ascii", "replace")
        out.append(_header(pax_name, 0o644, 0, 0, len(body), mtime, b"x"))
        out.append(body + bytes(-len(body) % BLOCK))
    out.append(_header(short_name, meta.mode & 0o7777, uid, gid, size if size <= MAX_OCTAL[12] else 0, mtime,
                       typeflag, linkname, meta.rdev if meta.kind in ("char", "block") else (0, 0)))
    return b"".join(out)


def _utf8(b: bytes) -> bool:
    try:
        b.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


def padding(size: int) -> bytes:
    return bytes(-size % BLOCK)


END = bytes(2 * BLOCK)
