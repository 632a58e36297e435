"""What kind of disk image a file is, decided by its content, never its name."""

from __future__ import annotations

import json
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import Vm2cError
from . import imagerefs, subformats
from .confine import Sandbox
from .run import run, which

# name -> qemu driver; order matters only for the header sniffing below
FORMATS = ("raw", "qcow2", "vdi", "vmdk", "vpc", "vhdx")
NICE = {"vpc": "vhd"}


@dataclass
class ImageInfo:
    path: Path
    format: str  # qemu driver name: raw qcow2 vdi vmdk vpc vhdx
    virtual_size: int
    disk_size: int  # bytes allocated on the host, the whole chain
    backing_chain: list[str] = field(default_factory=list)
    extents: list[str] = field(default_factory=list)
    subformat: str = ""
    warnings: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        """The format's own name, as --json reports it: raw qcow2 vdi vmdk vhd vhdx."""
        return NICE.get(self.format, self.format)

    @property
    def display_format(self) -> str:
        return f"{self.name} ({self.subformat})" if self.subformat else self.name


def sniff(path: Path) -> str:
    """The container format from magic numbers; 'raw' when none matches."""
    with open(path, "rb") as f:
        head = f.read(512)
        f.seek(0, os.SEEK_END)
        size = f.tell()
        tail = b""
        if size >= 512:
            f.seek(size - 512)
            tail = f.read(512)
    if head.startswith(b"QFI\xfb"):
        return "qcow2"
    if len(head) >= 0x44 and head[0x40:0x44] == b"\x7f\x10\xda\xbe":
        return "vdi"
    if head.startswith(b"KDMV") or head.startswith(b"COWD"):
        return "vmdk"
    if head.startswith(b"# Disk DescriptorFile") or b"createType=" in head[:512] and b"# Disk" in head:
        return "vmdk"
    if head.startswith(b"vhdxfile"):
        return "vhdx"
    if head.startswith(b"conectix") or tail.startswith(b"conectix"):
        return "vpc"
    return "raw"


def _check_file(path: Path) -> os.stat_result:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise Vm2cError(f"{path}: no such file") from None
    except PermissionError:
        raise Vm2cError(f"{path}: permission denied") from None
    if stat.S_ISDIR(st.st_mode):
        raise Vm2cError(f"{path}: is a directory, not a disk image")
    if not (stat.S_ISREG(st.st_mode) or stat.S_ISBLK(st.st_mode)):
        raise Vm2cError(f"{path}: not a regular file or block device")
    if stat.S_ISREG(st.st_mode) and st.st_size == 0:
        raise Vm2cError(f"{path}: empty file (0 bytes), not a disk image")
    if not os.access(path, os.R_OK):
        raise Vm2cError(f"{path}: permission denied")
    return st


def identify(path: Path) -> ImageInfo:
    """Format, sizes, backing chain; raises Vm2cError on a broken or hostile image."""
    path = Path(os.path.abspath(path))
    st = _check_file(path)
    fmt = sniff(path)
    # a VMDK descriptor is a small text file; anything else under a sector is not a disk (sfdisk
    # would say "Invalid argument")
    if stat.S_ISREG(st.st_mode) and st.st_size < 512 and fmt == "raw":
        raise Vm2cError(f"{path}: {st.st_size} bytes, too small to be a disk image (less than one sector)")
    if not which("qemu-img"):
        from .userspace.identify import identify_without_qemu

        return identify_without_qemu(path)
    _, extents = imagerefs.check(path, fmt)  # before qemu opens any file the image names
    box = Sandbox.for_image(path)  # qemu sees the image's directory and nothing else (confine.py)
    qinfo = run(["qemu-img", "info", "--output=json", "--backing-chain", "-f", fmt, str(path)],
                check=False, timeout=60, sandbox=box)
    if qinfo.returncode != 0:
        _refuse_unseen(path, qinfo.stderr.decode(errors="replace"), box)
        msg = qinfo.stderr.decode(errors="replace").strip().splitlines()
        why = msg[-1].split(": ", 2)[-1] if msg else "unreadable"
        raise Vm2cError(f"{path}: damaged {NICE.get(fmt, fmt)} image ({why})")
    chain = json.loads(qinfo.stdout)
    top = chain[0]
    info = ImageInfo(path=path, format=fmt, virtual_size=int(top["virtual-size"]),
                     disk_size=sum(int(c.get("actual-size", 0)) for c in chain))
    info.backing_chain = [layer["filename"] for layer in chain[1:]]
    info.extents = extents
    info.subformat = subformats.of(path, fmt)
    if stat.S_ISREG(st.st_mode) and fmt != "raw":
        _check_truncation(info, st.st_size, box)
    return info


def _refuse_unseen(path: Path, err: str, box: Sandbox) -> None:
    """qemu failed to open a file the image names that the sandbox does not show: say so,
    rather than 'damaged' (imagerefs did not catch this name; the sandbox did)."""
    for name in re.findall(r"Could not open '([^'\n]*)'", err):
        if name != str(path) and not box.allows(name, str(path.parent)):
            raise Vm2cError(f"{path}: names {name[:200]!r}, outside the image's directory; vm2c lets qemu "
                            f"see only that directory, so it was not opened{imagerefs.flatten_hint(path)}")


def _check_truncation(info: ImageInfo, file_size: int, box: Sandbox) -> None:
    """A header can be intact while the data it points at is gone."""
    if info.format in ("qcow2", "vdi", "vmdk", "vhdx"):
        chk = run(["qemu-img", "check", "-f", info.format, "--output=json", str(info.path)],
                  check=False, timeout=120, sandbox=box)
        try:
            res = json.loads(chk.stdout or b"{}")
        except ValueError:
            res = {}
        if res.get("corruptions") or res.get("check-errors") or chk.returncode in (1, 2) and not res:
            raise Vm2cError(f"{info.path}: damaged {NICE.get(info.format, info.format)} image "
                            f"(qemu-img check found {res.get('corruptions', 0)} corruptions; truncated?)")
    if info.format in ("vdi", "vpc", "vhdx", "qcow2") and not info.backing_chain:
        m = run(["qemu-img", "map", "--output=json", "-f", info.format, str(info.path)], check=False, timeout=120,
                sandbox=box)
        if m.returncode != 0:
            raise Vm2cError(f"{info.path}: damaged {NICE.get(info.format, info.format)} image (block map unreadable)")
        end = 0
        for e in json.loads(m.stdout or b"[]"):
            if e.get("data") and "offset" in e:
                end = max(end, int(e["offset"]) + int(e["length"]))
        if end > file_size:
            raise Vm2cError(f"{info.path}: truncated {NICE.get(info.format, info.format)} image "
                            f"(data up to byte {end}, file has {file_size})")


def looks_like_disk(path: Path) -> bool:
    """Cheap content test for the file picker: a container format, a partition
    table, or a filesystem superblock at the start. Never trusts the name."""
    try:
        if not path.is_file() or path.stat().st_size < 4096:
            return False
        if sniff(path) != "raw":
            return True
        with open(path, "rb") as f:
            head = f.read(68 * 1024)
    except OSError:
        return False
    return (head[510:512] == b"\x55\xaa" or head[1080:1082] == b"\x53\xef" or head[:4] == b"XFSB"
            or head[65600:65608] == b"_BHRfS_M")
