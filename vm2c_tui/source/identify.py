"""A disk image identified and checked: format, sizes, backing chain, truncation (qemu-img, confined)."""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path

from vm2c_tui.errors import DamagedImage, Vm2cError
from vm2c_tui.host.confine import Sandbox
from vm2c_tui.host.run import run, which
from vm2c_tui.source import imagerefs, subformats, vdichain
from vm2c_tui.source.magic import NICE, ImageInfo, sniff
from vm2c_tui.source.vdi import read_header


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


def identify(path: Path, snapshot: str = "") -> ImageInfo:
    """Format, sizes, backing chain; raises Vm2cError on a broken or hostile image. SNAPSHOT: a
    qcow2's internal snapshot to read instead of its current state (it must exist)."""
    path = Path(os.path.abspath(path))
    st = _check_file(path)
    fmt = sniff(path)
    # a VMDK descriptor is a small text file; anything else under a sector is not a disk (sfdisk
    # would say "Invalid argument")
    if stat.S_ISREG(st.st_mode) and st.st_size < 512 and fmt == "raw":
        raise Vm2cError(f"{path}: {st.st_size} bytes, too small to be a disk image (less than one sector)")
    if fmt == "vdi" and not snapshot:
        hdr = read_header(str(path))
        if hdr is not None and hdr.differencing:  # qemu refuses these: our reader, with its parents
            return vdichain.identify_child(path)
    if fmt in ("vhdx", "vpc") and subformats.of(path, fmt) == "differencing":
        raise Vm2cError(f"{path}: a differencing {NICE.get(fmt, fmt)} (a Hyper-V checkpoint, .avhdx) holds only the "
                        f"changes since its parent; vm2c does not read these chains and never reads one as if it had "
                        f"no parent: merge the checkpoint in Hyper-V (Edit Disk > Merge), then convert the merged disk")
    if not which("qemu-img"):
        from vm2c_tui.source.noqemu import identify_without_qemu

        return identify_without_qemu(path)
    _, extents = imagerefs.check(path, fmt)  # before qemu opens any file the image names
    box = Sandbox.for_image(path)  # qemu sees the image's directory and nothing else (confine.py)
    qinfo = run(["qemu-img", "info", "--output=json", "--backing-chain", "-f", fmt, str(path)],
                check=False, timeout=60, sandbox=box)
    if qinfo.returncode != 0:
        _refuse_unseen(path, qinfo.stderr.decode(errors="replace"), box)
        msg = qinfo.stderr.decode(errors="replace").strip().splitlines()
        why = msg[-1].split(": ", 2)[-1] if msg else "unreadable"
        raise DamagedImage(f"{path}: damaged {NICE.get(fmt, fmt)} image ({why})")
    chain = json.loads(qinfo.stdout)
    top = chain[0]
    info = ImageInfo(path=path, format=fmt, virtual_size=int(top["virtual-size"]),
                     disk_size=sum(int(c.get("actual-size", 0)) for c in chain))
    info.backing_chain = [layer["filename"] for layer in chain[1:]]
    info.extents = extents
    info.subformat = subformats.of(path, fmt)
    info.snapshots = _internal_snapshots(path, top.get("snapshots") or [])
    if snapshot:
        if snapshot not in [s["name"] for s in info.snapshots]:
            names = ", ".join(repr(s["name"]) for s in info.snapshots) or "none"
            raise Vm2cError(f"{path}: no internal snapshot named {snapshot!r} (it has: {names})")
        info.at_snapshot = snapshot
    if stat.S_ISREG(st.st_mode) and fmt != "raw":
        _check_truncation(info, st.st_size, box)
    if fmt == "vdi" and (stale := vdichain.stale_warning(path)):
        info.warnings.append(stale)
    return info


def _internal_snapshots(path: Path, listed: list[dict]) -> list[dict]:
    import datetime

    return [{"name": str(s.get("name", "")), "depth": 0, "current": False, "disks": [str(path)],
             "date": datetime.datetime.fromtimestamp(int(s.get("date-sec", 0)), datetime.timezone.utc).isoformat()}
            for s in listed]


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
            raise DamagedImage(f"{info.path}: damaged {NICE.get(info.format, info.format)} image "
                            f"(qemu-img check found {res.get('corruptions', 0)} corruptions; truncated?)")
    if info.format in ("vdi", "vpc", "vhdx", "qcow2") and not info.backing_chain:
        m = run(["qemu-img", "map", "--output=json", "-f", info.format, str(info.path)], check=False, timeout=120,
                sandbox=box)
        if m.returncode != 0:
            raise DamagedImage(f"{info.path}: damaged {NICE.get(info.format, info.format)} image (block map unreadable)")
        end = 0
        for e in json.loads(m.stdout or b"[]"):
            if e.get("data") and "offset" in e:
                end = max(end, int(e["offset"]) + int(e["length"]))
        if end > file_size:
            raise DamagedImage(f"{info.path}: truncated {NICE.get(info.format, info.format)} image "
                            f"(data up to byte {end}, file has {file_size})")
