"""The mount plan's steps as commands: for each step (plan.mounts.mount_steps) the argv that
runs and the argv that undoes it, built once here. assemble() executes these records and the
dry-run prints them, so what runs and what is shown cannot disagree. A device an earlier step
attached appears as a ShellVar (LOOP1): the dry-run prints "$LOOP1", assemble() puts the
device losetup printed in its place. (The session's release wraps the undo in its own checks:
the loop device still over our file, the mount still ours.)"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath

from vm2c_tui.host.pagecache import direct_io_pays
from vm2c_tui.host.run import ShellVar
from vm2c_tui.plan.mounts import MountStep
from vm2c_tui.read.kernel.attach import losetup_cmd
from vm2c_tui.read.kernel.mount import mount_cmd


@dataclass
class Command:
    argv: list[str]
    undo: list[str]
    sets: str = ""  # the device variable this command's output names (losetup --show)
    fallback: list[str] | None = None  # run instead when ARGV fails (direct I/O is only a speed-up)

    def resolved(self, devices: dict[str, str]) -> list[str]:
        """ARGV with each device variable replaced by the device it stands for."""
        return [devices[a] if isinstance(a, ShellVar) else a for a in self.argv]


def target_of(top: str, step: MountStep) -> str:
    mp = step.plan.mountpoint
    return top if mp == "/" else str(PurePosixPath(top) / mp.lstrip("/"))


def attach(step: MountStep, raw: str, offset: int) -> Command:
    """losetup over the filesystem's bytes: RAW at OFFSET (the disk's raw view, or a joined
    copy of an LV in pieces), with direct I/O where it pays (pagecache.direct_io_pays)."""
    p = step.plan
    dio = direct_io_pays(raw, offset, p.size)
    return Command(losetup_cmd(raw, offset, p.size, dio), ["losetup", "-d", ShellVar(step.device)], step.device,
                   losetup_cmd(raw, offset, p.size) if dio else None)


def mount(step: MountStep, top: str) -> Command:
    p, target = step.plan, target_of(top, step)
    return Command(mount_cmd(ShellVar(step.device), p.fstype, target, p.subvol), ["umount", target])
