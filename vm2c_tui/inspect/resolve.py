"""Which filesystem on this disk (or this VM's disks) an fstab line names."""

from __future__ import annotations

import re

from vm2c_tui.inspect.model import Inspection, Volume

_DEV_PART = re.compile(r"^/dev/(?:[shvx]v?d([a-z]+)|nvme(\d+)n\d+p|mmcblk(\d+)p)(\d+)$")
_MULTI = re.compile(r"^d\d+/")  # a VM's several disks: ids gain d1/, d2/ ... (inspect/scan.py)


def _disk_index(m: re.Match) -> int:
    """sda/vda/xvda 0, sdb 1 ... sdaa 26; nvme0n1 0; mmcblk0 0: the guest's name for its disk."""
    letters, nvme, mmc = m.group(1), m.group(2), m.group(3)
    if letters:
        n = 0
        for c in letters:
            n = n * 26 + ord(c) - ord("a") + 1
        return n - 1
    return int(nvme or mmc or 0)


def _find(insp: Inspection, lv_id: str) -> Volume | None:
    """An LV by VG/LV, on one disk or among a VM's disks (where its id carries a dN/ prefix)."""
    return insp.find(lv_id) or next((v for v in insp.filesystems() if _MULTI.sub("", v.id) == lv_id
                                     and _MULTI.match(v.id)), None)


def _lvm_mapper_name(name: str) -> tuple[str, str] | None:
    # /dev/mapper/VG-LV with '-' inside names doubled
    parts = re.split(r"(?<!-)-(?!-)", name)
    if len(parts) != 2:
        return None
    return parts[0].replace("--", "-"), parts[1].replace("--", "-")


def resolve_spec(spec: str, insp: Inspection) -> Volume | None:
    fss = insp.filesystems()
    key, _, val = spec.partition("=")
    if spec.startswith("/dev/disk/by-uuid/"):
        key, val = "UUID", spec.rsplit("/", 1)[1]
    elif spec.startswith("/dev/disk/by-label/"):
        key, val = "LABEL", spec.rsplit("/", 1)[1].replace("\\x20", " ")
    elif spec.startswith("/dev/disk/by-partuuid/"):
        key, val = "PARTUUID", spec.rsplit("/", 1)[1]
    val = val.strip('"')
    if key == "UUID":
        return next((v for v in fss if v.uuid and v.uuid.lower() == val.lower()), None)
    if key == "LABEL":
        return next((v for v in fss if v.label and v.label == val), None)
    if key == "PARTUUID":
        return next((p for p in insp.partitions if p.partuuid and p.partuuid.lower() == val.lower()), None)
    if spec.startswith("/dev/mapper/"):
        names = _lvm_mapper_name(spec[len("/dev/mapper/"):])
        return _find(insp, f"{names[0]}/{names[1]}") if names else None
    m = _DEV_PART.match(spec)
    if m:
        # a lone disk image is the guest's first disk: /dev/sdb1 is on another one
        n = int(m.group(4))
        return next((p for p in insp.partitions if p.number == n and p.disk == _disk_index(m)), None)
    m = re.match(r"^/dev/([^/]+)/([^/]+)$", spec)
    if m:
        return _find(insp, f"{m.group(1)}/{m.group(2)}")
    return None


def resolve_fstab(insp: Inspection) -> None:
    """Fill `target` (or `skip`) of each fstab entry of the root filesystem."""
    root = insp.root_volume
    if root is None:
        return
    for e in root.fstab:
        if e.skip:
            continue
        if e.mountpoint == "/":
            e.target = root.id
            continue
        vol = resolve_spec(e.spec, insp)
        if vol is None:
            e.skip = "not on this disk"
        elif vol.id == root.id and subvol_of(e.options) in ("", root.subvol):
            e.skip = "same filesystem as the root"
        else:
            e.target = vol.id


def subvol_of(options: str) -> str:
    """The btrfs subvolume an fstab line mounts (subvol=@home), "" for the default."""
    for opt in options.split(","):
        if opt.startswith("subvol="):
            return opt[len("subvol="):].lstrip("/")
    return ""
