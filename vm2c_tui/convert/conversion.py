"""One conversion: the ExitStack that owns every resource, and the steps in order.

    with Conversion(source, options) as conv:
        conv.inspect(); conv.prepare(); conv.write_archive(outdir)   # or conv.stream()

Faces (CLI, wizard) drive these steps; nothing here knows about them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import psutil

from vm2c_tui import __version__
from vm2c_tui.archive import gnutar as arc
from vm2c_tui.archive.treescan import TreeScan
from vm2c_tui.errors import Vm2cError
from vm2c_tui.host.outdir import make as outdir_make
from vm2c_tui.host.outfile import refuse_odd, write_new
from vm2c_tui.host.run import run
from vm2c_tui.host.session import Session
from vm2c_tui.host.system import free_space, writers_on
from vm2c_tui.image.dockerfile import dockerfile_text, pick_shell
from vm2c_tui.inspect.guestinfo import read_facts
from vm2c_tui.inspect.guestpath import GuestRoot
from vm2c_tui.inspect.model import Inspection
from vm2c_tui.plan.excludes import Filters
from vm2c_tui.plan.mounts import MountPlan, plan_mounts
from vm2c_tui.plan.presets import PRESETS, SANITIZE, estimate_all, live_rules, matches, rules, savings
from vm2c_tui.read import engine
from vm2c_tui.read.engine import require_kernel_root
from vm2c_tui.read.kernel.assemble import Assembly, assemble
from vm2c_tui.read.kernel.attach import RawView, open_raw
from vm2c_tui.read.kernel.joincopy import JoinedCopies
from vm2c_tui.read.kernel.mount import bind_ro
from vm2c_tui.source.identify import identify

if TYPE_CHECKING:
    from vm2c_tui.read.userspace.tree import UserspaceTree


@dataclass
class Options:
    root: str | None = None
    use_fstab: bool = True
    disabled: set[str] = field(default_factory=set)
    preset: str = "container"
    excludes: list[str] = field(default_factory=list)
    sanitize: bool = True
    view: str | None = None
    engine: str | None = None  # auto | kernel | userspace (services/engine.py)
    sparse: bool = False  # GNU sparse members: a tar to keep, not for Docker (no Dockerfile then)

    def __post_init__(self) -> None:
        if self.preset not in PRESETS:
            raise Vm2cError(f"unknown preset '{self.preset}' (choose from {', '.join(PRESETS)})")


@dataclass
class Prepared:
    tree: Path
    spec: arc.TarSpec
    mounted: list[MountPlan]
    used_bytes: int  # of the assembled filesystems
    preset_saving: int  # bytes the chosen preset leaves out
    expected_bytes: int  # what the tar should hold
    scan: TreeScan | None
    sanitized: list[str]
    notes: list[str]
    shell: str
    os_name: str
    userspace: UserspaceTree | None = None  # the user-space engine's tree (tree and spec unused then)

    def whiteout_note(self) -> str | None:
        wh = self.userspace.filters.whiteouts if self.userspace else self.scan.join().whiteouts if self.scan else []
        if not wh:
            return None
        return (f"{len(wh)} guest file(s) named .wh.* skipped (Docker would treat them as whiteouts): "
                + ", ".join(wh[:5]))


@dataclass
class ArchiveResult:
    tar: Path
    dockerfile: Path
    size: int
    files: int
    seconds: float
    prepared: Prepared
    labels: dict[str, str]  # as written in the Dockerfile, for a later import of the same tar


def _du(tree: Path) -> int:
    proc = run(["du", "-s", "-x", "-B1", str(tree)], check=False, timeout=None)
    try:
        return int(proc.stdout.split()[0])
    except (IndexError, ValueError):
        return 0


class Conversion:
    def __init__(self, source: str | os.PathLike, options: Options | None = None,
                 inspection: Inspection | None = None):
        self.source = os.path.abspath(source)
        self.options = options or Options()
        self.live = os.path.isdir(self.source)
        self.session = Session("convert", self.source)
        self.joined = JoinedCopies(self.session)  # an LV in pieces is copied once, for inspect and mount
        self.inspection = inspection
        self.view: RawView | None = None
        self.plans: list[MountPlan] = []
        self.plan_notes: list[str] = []
        self.prepared: Prepared | None = None
        self.engine = "kernel" if self.live else engine.resolved(self.options.engine, inspection)

    def __enter__(self) -> Conversion:
        self.session.__enter__()
        return self

    def __exit__(self, *exc) -> bool:
        return self.session.__exit__(*exc)

    def close(self) -> None:
        self.session.close()

    def release(self) -> None:
        """Give back the mounts, loop devices and temp dirs as soon as tar is done (the daemon
        still committing the layer); plans and the prepared facts stay readable."""
        if self.prepared and self.prepared.scan:
            self.prepared.scan.join()  # its whiteouts are reported afterwards
        self.session.close()

    # -- steps -------------------------------------------------------------
    def inspect(self, progress=None) -> Inspection | None:
        if self.live:  # a running system (/) or a tree already on this machine
            return None
        if self.inspection is None:
            self.inspection = engine.inspect(self.source, self.options.engine, method=self.options.view,
                                             progress=progress, joined=self.joined)
            self.engine = engine.resolved(self.options.engine, self.inspection)
        return self.inspection

    def plan(self) -> list[MountPlan]:
        if self.live:
            return []
        insp = self.inspect()
        assert insp is not None
        self.plans, self.plan_notes = plan_mounts(insp, self.options.root, self.options.use_fstab,
                                                  self.options.disabled)
        self.joined.keep_only({p.fs_id for p in self.plans if p.enabled})
        return self.plans

    def prepare(self, progress=None, output_dir: Path | None = None) -> Prepared:
        """Attach, mount and assemble; estimate sizes; overlay the sanitised files."""
        note = progress or (lambda m: None)
        notes: list[str] = []
        if self.engine == "userspace":
            return self._prepare_userspace(note)
        require_kernel_root(self.engine, "archive")
        if self.live:
            tree = Path(self.source)
            mounted: list[MountPlan] = [MountPlan("/", "/", "", 0, 0, "live")]
            writers = writers_on(self.source)
            if writers:
                names = sorted({f"{n} (pid {p})" for p, n, _ in writers})[:8]
                notes.append(f"processes are writing to files under {self.source}: " + ", ".join(names) +
                             "; stop them first, the copy may be inconsistent")
            notes.append("live system: only the filesystem holding the source is archived (--one-file-system); "
                         "/etc/machine-id is left out rather than emptied")
            used = psutil.disk_usage(self.source).used if self.source == "/" else _du(tree)
        else:
            plans = self.plans or self.plan()
            notes += self.plan_notes
            insp = self.inspection
            assert insp is not None
            note("attaching the disk read-only")
            self.view = open_raw(self.session, identify(Path(self.source)), self.options.view)
            note("mounting the filesystems read-only")
            asm: Assembly = assemble(self.session, self.view, plans, self.joined)
            notes += asm.problems
            tree, mounted = asm.root, asm.mounted
            used = sum(psutil.disk_usage(str(tree) + (p.mountpoint if p.mountpoint != "/" else "")).used
                       for p in mounted if p.via == "mount")
        guest = GuestRoot(str(tree))
        mps = [p.mountpoint for p in mounted if p.via != "live"]
        excl = rules(self.options.preset, mps)
        saving = savings(guest, excl)
        sanitized: list[str] = []
        if self.options.sanitize:
            excl += list(SANITIZE)
            sanitized = self._sanitize(guest)
        user = list(self.options.excludes)
        if self.live:
            excl += live_rules(tree, output_dir, self.options.sanitize)
        spec = arc.TarSpec(tree, excl, user, one_file_system=self.live, sparse=self.options.sparse)
        facts = read_facts(guest)
        expected = max(used - saving, 0)
        scan = TreeScan(tree, Filters.build(spec.excludes, spec.user_excludes), self.live)
        self.session.callback(scan.stop)
        self.prepared = Prepared(tree, spec, mounted, used, saving, expected, scan, sanitized,
                                 notes, pick_shell(facts.shells), facts.os.pretty_name if facts.os else "")
        return self.prepared

    def _prepare_userspace(self, note) -> Prepared:
        from vm2c_tui.read.userspace.prepare import prepare_userspace
        from vm2c_tui.read.userspace.prepare import sanitized as us_sanitized
        from vm2c_tui.read.userspace.prepare import savings as us_savings

        plans = self.plans or self.plan()
        note("opening the image in user space")
        tree, facts, notes = prepare_userspace(self.session, self.source, plans, self.options)
        opened = {(m.fs_id, m.mountpoint) for m in tree.mounts}
        mounted = [p for p in plans if (p.fs_id, p.mountpoint) in opened]
        used = tree.used_bytes()
        saving = us_savings(tree, rules(self.options.preset, [m.mountpoint for m in mounted]))
        self.prepared = Prepared(Path(self.source), arc.TarSpec(Path(self.source)), mounted, used, saving,
                                 max(used - saving, 0),
                                 None, us_sanitized(tree) if self.options.sanitize else [], self.plan_notes + notes,
                                 pick_shell(facts.shells), facts.os.pretty_name if facts.os else "", tree)
        return self.prepared

    def estimates(self) -> dict[str, int]:
        """Bytes each preset would leave out of the assembled tree (walks only those parts)."""
        p = self.prepared or self.prepare()
        if p.userspace is not None:
            from vm2c_tui.read.userspace.prepare import estimate_all as us_estimates

            if not hasattr(self, "_estimates"):
                self._estimates = us_estimates(p.userspace, [m.mountpoint for m in p.mounted])
            return self._estimates
        if not hasattr(self, "_estimates"):
            self._estimates = estimate_all(GuestRoot(str(p.tree)), [m.mountpoint for m in p.mounted])
        return self._estimates

    def _sanitize(self, guest: GuestRoot) -> list[str]:
        done = ["/" + os.path.relpath(h, guest.root) + " left out"
                for r in SANITIZE for h in matches(guest, r.pattern)]
        mid = arc.blank_machine_id(guest)
        if mid is not None and mid.stat().st_size > 0 and not self.live:
            st = mid.stat()
            blank = self.session.tempdir("sanitize") / "machine-id"
            blank.touch()
            os.chown(blank, st.st_uid, st.st_gid)
            os.chmod(blank, st.st_mode & 0o7777)
            os.utime(blank, ns=(st.st_atime_ns, st.st_mtime_ns))
            bind_ro(self.session, blank, mid)
            done.append("/etc/machine-id emptied")
        return done

    def labels(self) -> dict[str, str]:
        p = self.prepared
        fs_id = self.source if self.live else (self.plans[0].fs_id if self.plans else "")
        return {"org.vm2c.source": os.path.basename(self.source), "org.vm2c.root": fs_id,
                "org.vm2c.os": p.os_name if p else "", "org.vm2c.version": __version__}

    def write_archive(self, outdir: Path, on_progress: arc.ProgressFn | None = None) -> ArchiveResult:
        p = self.prepared or self.prepare(output_dir=outdir)
        outdir_make(outdir)
        need = int(p.expected_bytes * 1.05) + (16 << 20)
        free = free_space(str(outdir))
        if free < need:
            raise Vm2cError(f"{outdir}: only {free >> 20} MiB free, the archive needs about {need >> 20} MiB")
        tar, dockerfile = outdir / "img.tar", outdir / "Dockerfile"
        for name in (tar, dockerfile):  # a planted link is refused before the work, not after it
            refuse_odd(name)
        if p.userspace is not None:
            from vm2c_tui.archive.usertar import write_tar as us_write_tar

            final = us_write_tar(p.userspace, tar, total=p.expected_bytes, on_progress=on_progress)
        else:
            final = arc.write_tar(p.spec, tar, total=p.expected_bytes, scan=p.scan, on_progress=on_progress)
        wh = p.whiteout_note()
        if wh and wh not in p.notes:
            p.notes.append(wh)
        labels = self.labels()
        if self.options.sparse:  # Docker cannot save a layer with sparse members: no recipe for one
            dockerfile.unlink(missing_ok=True)
        else:
            write_new(dockerfile, dockerfile_text(p.shell, labels).encode())
        return ArchiveResult(tar, dockerfile, final.bytes_done, final.files_done, final.elapsed, p, labels)

    def stream(self, on_progress: arc.ProgressFn | None = None):
        if self.options.sparse:
            raise Vm2cError("sparse members are for a tar kept as a file: Docker cannot save a layer holding them")
        p = self.prepared or self.prepare()
        if p.userspace is not None:
            from vm2c_tui.archive.usertar import stream_tar as us_stream_tar

            return us_stream_tar(p.userspace, total=p.expected_bytes, on_progress=on_progress)
        pipe = arc.TarPipe(p.spec, total=p.expected_bytes, scan=p.scan, on_progress=on_progress)
        # whatever the consumer did (daemon gone midway), tar and the read-ahead stop before
        # the tree is unmounted
        self.session.callback(pipe.close)
        return pipe
