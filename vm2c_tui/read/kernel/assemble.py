"""Put the guest system back together: the root, with its fstab mounts at their places.

Mount points come from the guest's fstab, so they are resolved inside the
guest tree (a hostile `/var -> /etc` symlink stays inside it). A filesystem
this kernel cannot mount (vfat here) is copied out with mtools and bound
in its place; anything that cannot be placed is reported, never dropped.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from vm2c_tui.host.confine import IMAGE, Sandbox
from vm2c_tui.host.run import run
from vm2c_tui.host.session import Session
from vm2c_tui.inspect.guestpath import GuestPathError, GuestRoot
from vm2c_tui.plan.mounts import MountPlan, MountStep, mount_steps
from vm2c_tui.read.kernel import steps
from vm2c_tui.read.kernel.attach import Views, attach_loop
from vm2c_tui.read.kernel.joincopy import JoinedCopies
from vm2c_tui.read.kernel.mount import bind_ro, mount_ro
from vm2c_tui.read.vfat import VfatOptions, short_extension

FAT_EPOCH = 315532800  # 1980-01-01


@dataclass
class Assembly:
    root: Path  # host path of the assembled tree
    mounted: list[MountPlan] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def assemble(session: Session, views: Views, plans: list[MountPlan], joined: JoinedCopies | None = None) -> Assembly:
    """Mount the plan under a private 0700 directory, step by step (plan.mounts.mount_steps, which
    the dry-run prints); the session releases it all. JOINED: the joined copies the inspection
    already made, if any."""
    joined = joined or JoinedCopies(session)
    top = session.tempdir("tree") / "root"
    top.mkdir()
    asm = Assembly(top)
    devices: dict[str, str] = {}
    attach: dict[str, MountPlan] = {}  # attached when first mounted: a refused mount point costs no loop device
    first_step: dict[str, MountStep] = {}
    for step in mount_steps(plans):
        plan = step.plan
        if step.action == "attach":
            attach[step.device], first_step[step.device] = plan, step
            continue
        target = _target(top, plan, asm.problems)
        if target is None:
            continue
        if step.action == "mount":
            if step.device not in devices:
                # an LV in pieces: no device-mapper to join them, a joined copy
                first = attach[step.device]
                src, offset = joined.file(views, first.fs_id, first.offset, first.extents)
                cmd = steps.attach(first_step[step.device], src, offset)
                devices[step.device] = attach_loop(session, src, cmd.argv, cmd.fallback)
            cmd = steps.mount(step, str(top))
            mount_ro(session, devices[step.device], plan.fstype, target, plan.subvol, cmd.resolved(devices))
        else:
            bind_ro(session, _mtools_copy(session, *views.locate(plan.offset), plan), target)
        asm.mounted.append(plan)
    return asm


def _target(top: Path, plan: MountPlan, problems: list[str]) -> Path | None:
    """Where PLAN lands in the tree: resolved inside the guest, and a real directory there (a guest
    symlink could put the mount over the root); None, with the reason in PROBLEMS, if not."""
    if plan.mountpoint == "/":
        return top
    try:
        target = Path(GuestRoot(str(top)).resolve(plan.mountpoint))
    except GuestPathError as exc:
        problems.append(f"{plan.fs_id} at {plan.mountpoint}: {exc}; left out")
        return None
    literal = top / plan.mountpoint.lstrip("/")
    if target != literal:
        problems.append(f"{plan.fs_id}: mount point {plan.mountpoint} is a symlink in the guest "
                        f"(to {'/' + str(target.relative_to(top)) if target != top else '/'}); left out")
        return None
    if not target.is_dir():
        problems.append(f"{plan.fs_id}: mount point {plan.mountpoint} is missing in the guest; left out")
        return None
    return target


def mtools_cmd(raw: str, offset: int, dest: str) -> list[str]:
    return ["mcopy", "-s", "-p", "-m", "-n", "-i", f"{raw}@@{offset}", "::/", dest]


def _mtools_copy(session: Session, raw: str, offset: int, plan: MountPlan) -> Path:
    """FAT has no owners or modes: copy it out in user space, then give each entry the owner
    and mode the kernel's vfat would show with the fstab's options (vfat.py)."""
    opts = VfatOptions.parse(plan.options, f"{plan.fs_id} at {plan.mountpoint}")
    work = session.tempdir("fat")
    stage = work / "fs"
    stage.mkdir()
    os.chmod(stage, 0o755)
    # mtools reads "FILE@@OFFSET" and splits at the first "@@": inside its sandbox the image is
    # /image, and mtools sees nothing else but the stage it writes to
    box = Sandbox.for_file(raw, inside=IMAGE, write=[stage])
    env = {**os.environ, "MTOOLS_SKIP_CHECK": "1"}
    run(mtools_cmd(IMAGE, offset, str(stage)), what=f"mcopy ({plan.fs_id})", env=env, sandbox=box)
    # mcopy puts the volume's content in DEST/ when DEST exists
    read_only = _read_only_entries(plan, offset, env, box)
    for dirpath, dirnames, filenames in os.walk(stage):
        rel = os.path.relpath(dirpath, stage)
        for name, is_dir in [(d, True) for d in dirnames] + [(f, False) for f in filenames]:
            path, key = os.path.join(dirpath, name), os.path.normpath(os.path.join(rel, name))
            os.lchown(path, opts.uid, opts.gid)
            os.chmod(path, opts.mode(is_dir, key in read_only, short_extension(name)))
    os.chown(stage, opts.uid, opts.gid)
    os.chmod(stage, opts.mode(True))
    os.utime(stage, (FAT_EPOCH, FAT_EPOCH))  # FAT's root directory has no date: the earliest FAT can hold
    return stage


def _read_only_entries(plan: MountPlan, offset: int, env: dict, box: Sandbox) -> set[str]:
    """Paths (relative to the volume's root) whose DOS read-only attribute is set, as
    `mattrib -/` lists them: attribute letters, then the path after '::/' (FAT names
    can hold neither ':' nor '/')."""
    out = run(["mattrib", "-/", "-i", f"{IMAGE}@@{offset}", "::/"], what=f"mattrib ({plan.fs_id})", env=env,
              sandbox=box)
    found = set()
    for line in os.fsdecode(out.stdout).splitlines():
        flags, sep, path = line.partition("::/")
        if sep and "R" in flags and path:
            found.add(os.path.normpath(path))
    return found
