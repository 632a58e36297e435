"""The mount plan: the root, then the guest's fstab mounts at their places, in mount order, and
a note for every fstab line left out (never dropped silently). Both engines assemble this plan."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from vm2c_tui.errors import Vm2cError
from vm2c_tui.host.system import KERNEL_FS, can_mount
from vm2c_tui.inspect.model import Inspection, Volume
from vm2c_tui.inspect.resolve import resolve_spec, subvol_of


@dataclass
class MountPlan:
    fs_id: str
    mountpoint: str  # inside the guest, "/" for the root
    fstype: str
    offset: int
    size: int
    via: str  # mount | mtools
    enabled: bool = True
    options: str = ""  # the guest's fstab options (mtools honours umask)
    subvol: str = ""  # btrfs subvolume to mount
    extents: list[tuple[int, int]] = field(default_factory=list)  # an LV in pieces (Volume.extents)


def plan_mounts(insp: Inspection, root_id: str | None = None, use_fstab: bool = True,
                disabled: frozenset[str] | set[str] = frozenset()) -> tuple[list[MountPlan], list[str]]:
    """The mounts to assemble, in mount order, and notes on fstab entries left out."""
    root_id = root_id or insp.root
    if not root_id:
        raise Vm2cError(f"{insp.source}: no root filesystem detected; choose one with --root ID "
                        f"(ids: {', '.join(v.id for v in insp.filesystems() if v.fstype)})")
    root = insp.find(root_id)
    if root is None:
        raise Vm2cError(f"{insp.source}: no filesystem with id '{root_id}' "
                        f"(ids: {', '.join(v.id for v in insp.filesystems())})")
    _check_readable(root)
    plans = [MountPlan(root.id, "/", root.fstype, root.offset, root.size, "mount", subvol=root.subvol,
                       extents=root.extents)]
    notes: list[str] = []
    if use_fstab:
        if root_id != insp.root:
            for e in root.fstab:
                if not e.skip and e.mountpoint != "/":
                    vol = resolve_spec(e.spec, insp)
                    e.target = vol.id if vol else None
                    e.skip = "" if vol else "not on this disk"
        for e in root.fstab:
            if e.mountpoint == "/":
                continue
            if e.skip:
                if e.skip not in ("swap", "pseudo filesystem"):
                    notes.append(f"fstab {e.spec} {e.mountpoint}: {e.skip}, left out")
                continue
            vol = insp.find(e.target or "")
            if vol is None:
                continue
            try:
                _check_readable(vol)
            except Vm2cError as exc:
                notes.append(f"fstab {e.spec} {e.mountpoint}: {exc}")
                continue
            via = "mount" if can_mount(vol.fstype) else "mtools" if vol.fstype == "vfat" else ""
            if not via:
                why = "this kernel cannot mount" if vol.fstype in KERNEL_FS else "vm2c does not let the kernel parse"
                notes.append(f"fstab {e.spec} {e.mountpoint}: {why} {vol.fstype}; left out")
                continue
            plans.append(MountPlan(vol.id, os.path.normpath(e.mountpoint), vol.fstype, vol.offset, vol.size,
                                   via, vol.id not in disabled, e.options,
                                   subvol_of(e.options), vol.extents))
    plans[1:] = sorted(plans[1:], key=lambda p: p.mountpoint.count("/"))
    return plans, notes


def _check_readable(vol: Volume) -> None:
    if not vol.readable:
        raise Vm2cError(f"{vol.id} cannot be read here: {vol.note}")
    if not vol.fstype or vol.fstype in ("swap", "LVM2_member", "crypto_LUKS"):
        raise Vm2cError(f"{vol.id} holds no readable filesystem ({vol.fstype or 'none found'})")


@dataclass
class MountStep:
    """One step of assembling the plan: `attach` a filesystem's bytes (once per filesystem:
    btrfs refuses a second device of the same fs), `mount` it at a mount point, or copy a FAT
    volume out and bind it (`fat`). DEVICE names the attached bytes (LOOP1 in the dry-run)."""

    action: str  # attach | mount | fat
    plan: MountPlan
    device: str = ""


def mount_steps(plans: list[MountPlan]) -> list[MountStep]:
    """The plan as steps in order: what assemble() runs and what the dry-run prints, so the two
    cannot disagree on which filesystem is attached when, or mounted where."""
    steps: list[MountStep] = []
    devices: dict[str, str] = {}
    for i, p in enumerate(plans, 1):
        if not p.enabled:
            continue
        if p.via != "mount":
            steps.append(MountStep("fat", p, f"FAT{i}"))
            continue
        if p.fs_id not in devices:
            devices[p.fs_id] = f"LOOP{i}"
            steps.append(MountStep("attach", p, devices[p.fs_id]))
        steps.append(MountStep("mount", p, devices[p.fs_id]))
    return steps
