"""An OVA: a tar holding an OVF and the disks it names. Its members are checked before any is
read (a name that is absolute, climbs with '..', or a link or device, refuses the whole file),
and the disks are copied into a private directory, each created new (O_EXCL|O_NOFOLLOW, 0600)."""

from __future__ import annotations

import gzip
import os
import shutil
import tarfile
from pathlib import Path

from vm2c_tui.errors import Vm2cError
from vm2c_tui.host.copyrange import copy_range
from vm2c_tui.source.imagerefs import shown
from vm2c_tui.source.vm.ovf import disk_files

MAX_MEMBERS = 4096


def is_ova(head: bytes) -> bool:
    """A file's first bytes are an OVA's: a tar whose first member is the .ovf."""
    return head[257:262] == b"ustar" and b".ovf" in head[:100].lower()


def members(path: Path) -> dict[str, tarfile.TarInfo]:
    try:
        tar = tarfile.open(path, "r:")
    except (tarfile.TarError, OSError) as exc:
        raise Vm2cError(f"{path}: not a readable OVA (an uncompressed tar): {exc}") from None
    with tar:
        out: dict[str, tarfile.TarInfo] = {}
        for m in tar:
            if len(out) >= MAX_MEMBERS:
                raise Vm2cError(f"{path}: more than {MAX_MEMBERS} members; not an OVA")
            name = m.name
            parts = name.split("/")
            if name.startswith("/") or ".." in parts or "\0" in name:
                raise Vm2cError(f"{path}: member {shown(name)} is an absolute path or climbs out with '..'; "
                                f"refusing the OVA")
            if not (m.isfile() or m.isdir()):
                raise Vm2cError(f"{path}: member {shown(name)} is a link or device, not a file; refusing the OVA")
            if m.isfile():
                out[name.removeprefix("./")] = m
    return out


def descriptor(path: Path) -> tuple[str, bytes, dict[str, tarfile.TarInfo]]:
    """(member name, bytes) of the OVA's .ovf (the first, as the spec puts it first), and the members."""
    found = members(path)
    ovfs = [n for n in found if n.lower().endswith(".ovf") and "/" not in n]
    if not ovfs:
        raise Vm2cError(f"{path}: an OVA without an .ovf descriptor")
    m = found[ovfs[0]]
    with open(path, "rb") as f:
        f.seek(m.offset_data)
        data = f.read(min(m.size, 16 << 20))
    return ovfs[0], data, found


def disks(path: Path) -> tuple[str, list[tuple[str, tarfile.TarInfo, str]]]:
    """(VM name, [(slot, member, compression)]) without unpacking anything."""
    name, data, found = descriptor(path)
    vm, files = disk_files(path.with_name(name), data)
    out = []
    for slot, href, comp in files:
        if href not in found:
            raise Vm2cError(f"{path}: the OVF names {shown(href)}, which is not a member of the OVA")
        out.append((slot, found[href], comp))
    return vm, out


def unpack(path: Path, member: tarfile.TarInfo, compression: str, dest_dir: Path) -> str:
    """MEMBER's bytes as a new file in DEST_DIR (a private temp dir), gunzipped if so marked."""
    dest = dest_dir / os.path.basename(member.name)
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with open(path, "rb") as src, os.fdopen(fd, "wb") as out:
        src.seek(member.offset_data)
        if compression == "gzip":
            with gzip.GzipFile(fileobj=_Bounded(src, member.size)) as g:
                shutil.copyfileobj(g, out, 1 << 20)
        elif compression:
            raise Vm2cError(f"{path}: {member.name} is compressed with {compression!r}, which vm2c cannot read")
        elif copy_range(src.fileno(), fd, member.size, member.offset_data, 0) < member.size:
            raise Vm2cError(f"{path}: truncated OVA ({member.name} ends early)")
    return str(dest)


class _Bounded:
    def __init__(self, f, size: int):
        self.f, self.left = f, size

    def read(self, n: int = -1) -> bytes:
        n = self.left if n < 0 else min(n, self.left)
        data = self.f.read(n)
        self.left -= len(data)
        return data
