"""The two engines behind one interface: `prepare(request)` assembles the guest tree from the
mount plan and says what it holds, as an `Assembled` whose tree the archive stage writes
(archive/trees.py). The conversion picks one by name and never branches on it again."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import psutil

from vm2c_tui.archive import gnutar
from vm2c_tui.archive.trees import MountedTree, ReaderTree, Tree
from vm2c_tui.archive.treescan import TreeScan
from vm2c_tui.convert.options import Options
from vm2c_tui.host.run import run
from vm2c_tui.host.session import Session
from vm2c_tui.host.system import writers_on
from vm2c_tui.inspect.guestinfo import read_facts
from vm2c_tui.inspect.guestpath import GuestRoot
from vm2c_tui.plan.excludes import Filters
from vm2c_tui.plan.mounts import MountPlan
from vm2c_tui.plan.presets import SANITIZE, live_rules, matches, rules, savings
from vm2c_tui.read.engine import require_kernel_root
from vm2c_tui.read.kernel.assemble import assemble
from vm2c_tui.read.kernel.attach import Views, open_raw
from vm2c_tui.read.kernel.joincopy import JoinedCopies
from vm2c_tui.read.kernel.mount import bind_ro
from vm2c_tui.read.userspace import prepare as reader_plan
from vm2c_tui.source.identify import identify


@dataclass
class Request:
    """What an engine is asked to assemble, and where it may put what it acquires."""

    session: Session
    source: str
    live: bool  # a running system or a directory tree: no image, no plan
    plans: list[MountPlan]
    options: Options
    joined: JoinedCopies
    output_dir: Path | None
    note: Callable[[str], None]
    disks: list[str] = field(default_factory=list)  # the VM's disk images in order (SOURCE's first)
    disk_snapshot: str = ""  # a lone qcow2's internal snapshot to read (source.vm.model.Machine)
    remote: object = None  # source.ssh.Remote: a running machine over SSH
    remote_inspection: object = None  # its inspect.remote.RemoteInspection


@dataclass
class Assembled:
    tree: Tree
    mounted: list[MountPlan]
    used_bytes: int  # of the assembled filesystems
    saving: int  # bytes the chosen preset leaves out
    sanitized: list[str]
    notes: list[str]
    facts: object  # guestinfo.GuestFacts of the root


class Engine(Protocol):
    def prepare(self, req: Request) -> Assembled: ...


class KernelEngine:
    """Loop devices and read-only mounts under a private directory; GNU tar over them."""

    def prepare(self, req: Request) -> Assembled:
        require_kernel_root("kernel", "archive")
        tree, mounted, used, notes = self._live(req) if req.live else self._mounted(req)
        guest = GuestRoot(str(tree))
        excl = rules(req.options.preset, [p.mountpoint for p in mounted if p.via != "live"])
        saving = savings(guest, excl)
        sanitized: list[str] = []
        if req.options.sanitize:
            excl += list(SANITIZE)
            sanitized = _sanitize(req, guest)
        if req.live:
            excl += live_rules(tree, req.output_dir, req.options.sanitize)
        spec = gnutar.TarSpec(tree, excl, list(req.options.excludes), one_file_system=req.live,
                              sparse=req.options.sparse, limit_rate=req.options.limit_rate)
        scan = TreeScan(tree, Filters.build(spec.excludes, spec.user_excludes), req.live)
        req.session.callback(scan.stop)
        return Assembled(MountedTree(tree, spec, scan, req.session), mounted, used, saving, sanitized, notes,
                         read_facts(guest))

    def _live(self, req: Request):
        tree, notes = Path(req.source), []
        writers = writers_on(req.source)
        if writers:
            names = sorted({f"{n} (pid {p})" for p, n, _ in writers})[:8]
            notes.append(f"processes are writing to files under {req.source}: " + ", ".join(names) +
                         "; stop them first, the copy may be inconsistent")
        notes.append("live system: only the filesystem holding the source is archived (--one-file-system); "
                     "/etc/machine-id is left out rather than emptied")
        used = psutil.disk_usage(req.source).used if req.source == "/" else _du(tree)
        return tree, [MountPlan("/", "/", "", 0, 0, "live")], used, notes

    def _mounted(self, req: Request):
        req.note("attaching the disk read-only")
        infos = [identify(Path(d), req.disk_snapshot) for d in req.disks or [req.source]]
        views = Views.of([open_raw(req.session, info, req.options.view) for info in infos],
                         [i.virtual_size for i in infos])
        req.note("mounting the filesystems read-only")
        asm = assemble(req.session, views, req.plans, req.joined)
        used = sum(psutil.disk_usage(str(asm.root) + (p.mountpoint if p.mountpoint != "/" else "")).used
                   for p in asm.mounted if p.via == "mount")
        return asm.root, asm.mounted, used, list(asm.problems)


def _du(tree: Path) -> int:
    proc = run(["du", "-s", "-x", "-B1", str(tree)], check=False, timeout=None)
    try:
        return int(proc.stdout.split()[0])
    except (IndexError, ValueError):
        return 0


def _sanitize(req: Request, guest: GuestRoot) -> list[str]:
    """Host keys and the like are left out (SANITIZE); an image's machine-id is overlaid empty."""
    done = ["/" + os.path.relpath(h, guest.root) + " left out" for r in SANITIZE for h in matches(guest, r.pattern)]
    mid = gnutar.blank_machine_id(guest)
    if mid is not None and mid.stat().st_size > 0 and not req.live:
        st = mid.stat()
        blank = req.session.tempdir("sanitize") / "machine-id"
        blank.touch()
        os.chown(blank, st.st_uid, st.st_gid)
        os.chmod(blank, st.st_mode & 0o7777)
        os.utime(blank, ns=(st.st_atime_ns, st.st_mtime_ns))
        bind_ro(req.session, blank, mid)
        done.append("/etc/machine-id emptied")
    return done


class UserspaceEngine:
    """The image's bytes read in Python, a reader per planned filesystem; our own tar writer."""

    def prepare(self, req: Request) -> Assembled:
        req.note("opening the image in user space")
        tree, facts, notes = reader_plan.prepare_userspace(req.session, req.disks or [req.source], req.plans,
                                                                    req.options, req.disk_snapshot)
        opened = {(m.fs_id, m.mountpoint) for m in tree.mounts}
        mounted = [p for p in req.plans if (p.fs_id, p.mountpoint) in opened]
        reader = ReaderTree(tree)
        saving = reader.savings(rules(req.options.preset, [m.mountpoint for m in mounted]))
        sanitized = reader_plan.sanitized(tree) if req.options.sanitize else []
        return Assembled(reader, mounted, tree.used_bytes(), saving, sanitized, notes, facts)


def _engines() -> dict[str, Engine]:
    from vm2c_tui.convert.remote import RemoteEngine

    return {"kernel": KernelEngine(), "userspace": UserspaceEngine(), "remote": RemoteEngine()}


ENGINES: dict[str, Engine] = _engines()
