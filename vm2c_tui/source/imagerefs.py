"""The files a disk image names for its reader to open: a qcow2's backing file and external
data file, a VMDK's extents and parent. An image from elsewhere is data, so every name is
checked from the headers before qemu (or the user-space engine) opens anything: it must be a
plain path (qemu takes "proto:..." and "json:{...}" names as network or driver specs) and lie
inside the image's own directory (a crafted image could name a host disk)."""

from __future__ import annotations

import os
import re
import struct
from pathlib import Path

from vm2c_tui.errors import Vm2cError
from vm2c_tui.host.confine import trusted_dirs

MAX_CHAIN = 16
HEADER = 1 << 16  # where a qcow2's header extensions and backing name live (its first cluster)
MAX_DESCRIPTOR = 1 << 20
EXTENT = re.compile(rb'^\s*(?:RW|RDONLY|NOACCESS)\s+\d+\s+\w+\s+"([^"]+)"', re.M)
PARENT = re.compile(rb'^\s*parentFileNameHint\s*=\s*"([^"]*)"', re.M)
_DATA_FILE_EXT = 0x44415441  # qcow2 header extension "DATA": the external data file's name
_EXTERNAL_DATA = 1 << 2  # qcow2 incompatible feature bit


def flatten_hint(path: Path) -> str:
    """How an operator who trusts the files an image names makes one self-contained image."""
    return (f" (an image from elsewhere could name a host disk; if you trust it: "
            f"qemu-img convert -O qcow2 {path} flat.qcow2, then convert flat.qcow2, or name the directory "
            f"with --trust-dir DIR)")


def qcow2_names(path: Path) -> list[tuple[str, str]]:
    """('backing file' | 'external data file', name) from a qcow2 header."""
    with open(path, "rb") as f:
        head = f.read(HEADER)
        if len(head) < 72:
            return []
        off, size = struct.unpack_from(">QI", head, 8)
        out = []
        if off and size:
            f.seek(off)
            out.append(("backing file", f.read(min(size, 4096)).decode("utf-8", "replace")))
    version, = struct.unpack_from(">I", head, 4)
    if version >= 3 and len(head) >= 104 and struct.unpack_from(">Q", head, 72)[0] & _EXTERNAL_DATA:
        at, = struct.unpack_from(">I", head, 100)  # header_length: the extensions follow
        while at + 8 <= len(head):
            kind, n = struct.unpack_from(">II", head, at)
            if kind == 0:
                break
            if kind == _DATA_FILE_EXT:
                out.append(("external data file", head[at + 8:at + 8 + n].decode("utf-8", "replace")))
            at += 8 + (n + 7) // 8 * 8
    return out


def vmdk_descriptor(path: Path) -> bytes:
    """The text descriptor: the file itself, or the one embedded in a sparse extent."""
    with open(path, "rb") as f:
        head = f.read(512)
        if head.startswith(b"KDMV"):
            off, size = struct.unpack_from("<QQ", head, 28)
            # a crafted offset past the file (or past what seek takes) holds no descriptor
            if not off or size * 512 > MAX_DESCRIPTOR or off * 512 >= os.fstat(f.fileno()).st_size:
                return b""
            f.seek(off * 512)
            return f.read(size * 512)
        if head.startswith(b"COWD"):
            return b""
        return head + f.read(MAX_DESCRIPTOR - 512)


def vmdk_names(path: Path) -> list[tuple[str, str]]:
    desc = vmdk_descriptor(path)
    out = [("VMDK extent", m.group(1).decode("utf-8", "replace")) for m in EXTENT.finditer(desc)]
    out += [("VMDK parent", m.group(1).decode("utf-8", "replace")) for m in PARENT.finditer(desc) if m.group(1)]
    return out


def shown(name: str, limit: int = 120) -> str:
    """A name from an image, for a one-line message: quoted, control characters escaped, cut."""
    return repr(name[:limit]) + ("…" if len(name) > limit else "")


def _checked(top: Path, here: Path, kind: str, name: str) -> str:
    """NAME, as written in an image in directory HERE, resolved; refused unless it is a plain
    path inside TOP's directory."""
    if "\0" in name or len(os.fsencode(name)) > 4095 or any(len(p) > 255 for p in os.fsencode(name).split(b"/")):
        raise Vm2cError(f"{top}: its {kind} name {shown(name)} holds a NUL byte or is longer than a path "
                        f"can be; refusing it{flatten_hint(top)}")
    if name.startswith("json:") or re.match(r"^[^/]*:", name):  # qemu's own test for a protocol
        raise Vm2cError(f"{top}: its {kind} {shown(name)} is a qemu protocol or driver spec, not a file; refusing "
                        f"to open it{flatten_hint(top)}")
    full = os.path.realpath(os.path.join(here, name))
    base = str(top.parent)
    if not any(os.path.commonpath([full, b]) == b for b in (base, *trusted_dirs())):
        raise Vm2cError(f"{top}: {kind} {shown(name)} lies outside {base}; refusing to read it{flatten_hint(top)}")
    return full


def check(top: Path, fmt: str) -> tuple[list[str], list[str]]:
    """(backing chain, VMDK extents) of TOP, each name checked, following the chain down;
    a name that fails is a Vm2cError."""
    from vm2c_tui.source.magic import sniff

    chain: list[str] = []
    extents: list[str] = []
    cur, cur_fmt = top, fmt
    for _ in range(MAX_CHAIN):
        names = qcow2_names(cur) if cur_fmt == "qcow2" else vmdk_names(cur) if cur_fmt == "vmdk" else []
        below = None
        for kind, name in names:
            full = _checked(top, cur.parent, kind, name)
            if kind in ("backing file", "VMDK parent"):
                below = (kind, full)
            elif kind == "VMDK extent" and cur == top and full != str(top):
                extents.append(full)
        if below is None:
            return chain, extents
        kind, below = below
        if not os.path.isfile(below):
            why = "is missing" if not os.path.lexists(below) else "is not a regular file"
            raise Vm2cError(f"{top}: its {kind} {shown(below)} {why}")
        chain.append(below)
        cur, cur_fmt = Path(below), sniff(Path(below))
    raise Vm2cError(f"{top}: a backing chain more than {MAX_CHAIN} images deep; refusing to follow it")
