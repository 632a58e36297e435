"""Read-only mounts that never replay a journal (so the source is never written)."""

from __future__ import annotations

from pathlib import Path

from vm2c_tui.errors import Vm2cError
from vm2c_tui.host.run import run, signals_held
from vm2c_tui.host.session import Session, release_mount
from vm2c_tui.host.system import DRIVER, KERNEL_FS, can_mount

BASE_OPTS = "ro,nosuid,nodev,noexec"
# Journal replay would write to the device; these options forbid it.
NO_REPLAY = {"ext3": "noload", "ext4": "noload", "xfs": "norecovery,nouuid", "btrfs": "rescue=nologreplay"}
def mount_options(fstype: str, subvol: str = "") -> str:
    opts = [BASE_OPTS]
    if NO_REPLAY.get(DRIVER.get(fstype, fstype)):
        opts.append(NO_REPLAY[DRIVER.get(fstype, fstype)])
    if subvol and fstype == "btrfs":
        opts.append(f"subvol={subvol}")
    return ",".join(opts)


def mount_cmd(dev: str, fstype: str, target: str, subvol: str = "") -> list[str]:
    return ["mount", "-t", DRIVER.get(fstype, fstype), "-o", mount_options(fstype, subvol), dev, target]


def mount_ro(session: Session, dev: str, fstype: str, target: Path, subvol: str = "",
             argv: list[str] | None = None) -> Path:
    """ARGV: the mount command as read/kernel/steps.py recorded it (mount_cmd's, DEV in place)."""
    if fstype not in KERNEL_FS:
        raise Vm2cError(f"vm2c mounts only {', '.join(sorted(KERNEL_FS))} through the kernel, not {fstype}")
    if not can_mount(fstype):
        raise Vm2cError(f"this kernel cannot mount {fstype} (see `vm2c doctor`)")
    if subvol and ("," in subvol or "\n" in subvol):
        raise Vm2cError(f"btrfs subvolume name {subvol!r} cannot be passed as a mount option")
    target.mkdir(parents=True, exist_ok=True)
    with signals_held():
        run(argv or mount_cmd(dev, fstype, str(target), subvol), what=f"mount {fstype}")
        session.track("mount", str(target), lambda: release_mount(str(target)))
    return target


def bind_ro(session: Session, src: Path, target: Path) -> None:
    """Overlay SRC on TARGET inside our private tree (used for sanitised files)."""
    with signals_held():
        run(["mount", "--bind", str(src), str(target)], what="bind mount")
        session.track("mount", str(target), lambda: release_mount(str(target)))
    run(["mount", "-o", "remount,bind,ro", str(target)], check=False)
