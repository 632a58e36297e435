"""Which filesystem holds the root: every inspection ends here, whichever engine read the disk."""

from __future__ import annotations

from collections.abc import Callable

from vm2c_tui.inspect.guestinfo import read_facts
from vm2c_tui.inspect.guestpath import GuestRoot
from vm2c_tui.inspect.model import Inspection, Volume
from vm2c_tui.inspect.resolve import resolve_fstab

BTRFS_ROOT_SUBVOLS = ("@", "@root", "@rootfs", "root")  # Ubuntu, openSUSE-style, others


def conclude(insp: Inspection, look_inside: bool) -> Inspection:
    """What every inspection ends with: the root, the fstab targets."""
    pick_root(insp)
    resolve_fstab(insp)
    insp.looked_inside = look_inside
    return insp


def btrfs_subvol_root(vol: Volume, facts, open_subvol: Callable[[str], GuestRoot]):
    """Distributions keep the root in a subvolume, visible as a directory of the top level.
    OPEN_SUBVOL(name) shows that subvolume (a path under the mount, or the user-space reader)."""
    if vol.fstype != "btrfs" or facts.score >= 4:
        return facts
    for name in BTRFS_ROOT_SUBVOLS:
        if name + "/" not in facts.top:
            continue
        sub = read_facts(open_subvol(name))
        if sub.score >= 4:
            vol.subvol = name
            return sub
    return facts


def remember(vol: Volume, facts) -> None:
    vol.os, vol.fstab, vol.top, vol.shells, vol.score = facts.os, facts.fstab, facts.top, facts.shells, facts.score


def pick_root(insp: Inspection) -> None:
    best = max(insp.filesystems(), key=lambda v: v.score, default=None)
    if best is not None and best.score >= 4:
        best.root = True
        insp.root = best.id
