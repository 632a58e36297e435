"""Read-only mounts that never replay a journal (so the source is never written)."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import Vm2cError
from .run import run, signals_held
from .session import Session, release_mount

BASE_OPTS = "ro,nosuid,nodev,noexec"
# Journal replay would write to the device; these options forbid it.
NO_REPLAY = {"ext3": "noload", "ext4": "noload", "xfs": "norecovery,nouuid", "btrfs": "rescue=nologreplay"}
DRIVER = {"ext2": "ext4", "ext3": "ext4"}  # the ext4 driver reads all three


def kernel_filesystems() -> set[str]:
    with open("/proc/filesystems") as f:
        return {line.split()[-1] for line in f if line.strip()}


# The filesystems vm2c lets the kernel parse. A guest's fstab or --root may name any type, and a
# crafted squashfs, erofs or whatever module a workstation has loaded is kernel attack surface:
# those are read in user space where vm2c can, or listed as not read.
KERNEL_FS = frozenset({"ext2", "ext3", "ext4", "xfs", "btrfs"})


def can_mount(fstype: str) -> bool:
    return fstype in KERNEL_FS and DRIVER.get(fstype, fstype) in kernel_filesystems()


def mount_options(fstype: str, subvol: str = "") -> str:
    opts = [BASE_OPTS]
    if NO_REPLAY.get(DRIVER.get(fstype, fstype)):
        opts.append(NO_REPLAY[DRIVER.get(fstype, fstype)])
    if subvol and fstype == "btrfs":
        opts.append(f"subvol={subvol}")
    return ",".join(opts)


def mount_cmd(dev: str, fstype: str, target: str, subvol: str = "") -> list[str]:
    return ["mount", "-t", DRIVER.get(fstype, fstype), "-o", mount_options(fstype, subvol), dev, target]


def mount_ro(session: Session, dev: str, fstype: str, target: Path, subvol: str = "") -> Path:
    if fstype not in KERNEL_FS:
        raise Vm2cError(f"vm2c mounts only {', '.join(sorted(KERNEL_FS))} through the kernel, not {fstype}")
    if not can_mount(fstype):
        raise Vm2cError(f"this kernel cannot mount {fstype} (see `vm2c doctor`)")
    if subvol and ("," in subvol or "\n" in subvol):
        raise Vm2cError(f"btrfs subvolume name {subvol!r} cannot be passed as a mount option")
    target.mkdir(parents=True, exist_ok=True)
    with signals_held():
        run(mount_cmd(dev, fstype, str(target), subvol), what=f"mount {fstype}")
        session.track("mount", str(target), lambda: release_mount(str(target)))
    return target


def bind_ro(session: Session, src: Path, target: Path) -> None:
    """Overlay SRC on TARGET inside our private tree (used for sanitised files)."""
    with signals_held():
        run(["mount", "--bind", str(src), str(target)], what="bind mount")
        session.track("mount", str(target), lambda: release_mount(str(target)))
    run(["mount", "-o", "remount,bind,ro", str(target)], check=False)


def is_root() -> bool:
    return os.geteuid() == 0
