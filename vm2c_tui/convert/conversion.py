"""One conversion: the ExitStack that owns every resource, and the steps in order.

    with Conversion(source, options) as conv:
        conv.inspect(); conv.prepare(); conv.write_archive(outdir)   # or conv.stream()

Faces (CLI, wizard) drive these steps; nothing here knows about them, or which engine reads.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from vm2c_tui import __version__
from vm2c_tui.archive.gnutar import ProgressFn
from vm2c_tui.archive.trees import Tree
from vm2c_tui.convert.engines import ENGINES, Request
from vm2c_tui.convert.options import Options
from vm2c_tui.convert.remote import plans as remote_plans
from vm2c_tui.errors import Vm2cError
from vm2c_tui.host.outdir import make as outdir_make
from vm2c_tui.host.outfile import refuse_odd, write_new
from vm2c_tui.host.session import Session
from vm2c_tui.host.system import free_space
from vm2c_tui.image import runlayer
from vm2c_tui.image.dockerfile import dockerfile_text, pick_shell
from vm2c_tui.inspect.model import Inspection
from vm2c_tui.inspect.remote import inspect_remote
from vm2c_tui.plan.mounts import MountPlan, plan_mounts
from vm2c_tui.plan.runplan import RunPlan, plan_run
from vm2c_tui.read import engine
from vm2c_tui.read.kernel.joincopy import JoinedCopies
from vm2c_tui.source.ssh import Remote, is_remote, is_remote_machine
from vm2c_tui.source.vm.model import Machine
from vm2c_tui.source.vm.resolve import definition_in, open_machine

__all__ = ["ArchiveResult", "Conversion", "Options", "Prepared"]


@dataclass
class Prepared:
    tree: Tree  # what the archive stage writes, whichever engine assembled it (archive/trees.py)
    mounted: list[MountPlan]
    used_bytes: int  # of the assembled filesystems
    preset_saving: int  # bytes the chosen preset leaves out
    expected_bytes: int  # what the tar should hold
    sanitized: list[str]
    notes: list[str]
    shell: str
    os_name: str

    def whiteout_note(self) -> str | None:
        wh = self.tree.whiteouts()
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


class Conversion:
    def __init__(self, source: str | os.PathLike | list, options: Options | None = None,
                 inspection: Inspection | None = None, machine: Machine | None = None, on_note=None):
        """SOURCE: a disk image, a VM (definition, OVA, folder), a live tree, or a list of one
        machine's disk images."""
        self.options = options or Options()
        self.on_note = on_note  # a disk image copied from a machine over SSH says how far
        # ssh://[user@]host[:port], through sudo -n there when asked
        self.remote = Remote.parse(source, self.options.sudo) if is_remote_machine(source) else None
        if self.remote is not None or is_remote(source):  # a disk image there: the machine layer opens it
            self.sources = [self.remote.url if self.remote else source]
        else:
            self.sources = [os.path.abspath(s) for s in (source if isinstance(source, list) else [source])]
        self.source = self.sources[0]
        if self.options.compress and self.remote is None:
            raise Vm2cError(f"--compress {self.options.compress}: only for a machine over SSH (ssh://host), whose "
                            f"stream crosses a network")
        if self.options.stop_services and self.remote is None:
            raise Vm2cError("--stop-services: only for a machine over SSH (ssh://host); on this machine, stop them "
                            "yourself")
        self.live = self.remote is None and os.path.isdir(self.source) and definition_in(Path(self.source)) is None
        self.machine: Machine | None = machine  # the VM (or lone disk) the source is, resolved once
        # (given: resolved by a face that keeps its files, the wizard's unpacked OVA)
        self.session = Session("convert", self.source)
        self.joined = JoinedCopies(self.session)  # an LV in pieces is copied once, for inspect and mount
        self.inspection = inspection
        self.plans: list[MountPlan] = []
        self.plan_notes: list[str] = []
        self.prepared: Prepared | None = None
        self._estimates: dict[str, int] | None = None
        self._run: RunPlan | None = None
        self.engine = ("remote" if self.remote else "kernel" if self.live
                       else engine.resolved(self.options.engine, inspection))

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
        if self.prepared:
            self.prepared.tree.settle()
        self.session.close()

    @property
    def disks(self) -> list[str]:
        """The disk images read: the source itself, or those its VM definition attaches (an
        OVA's unpacked into this conversion's private directory)."""
        if self.machine is None:
            self.machine = open_machine(self.sources if len(self.sources) > 1 else self.source, self.session,
                                        self.options.snapshot, self.on_note)
        return [d.path for d in self.machine.disks]

    # -- steps -------------------------------------------------------------
    def inspect(self, progress=None) -> Inspection | None:
        if self.live:  # a running system (/) or a tree already on this machine
            return None
        if self.remote is not None:
            if self.inspection is None:
                self.inspection = inspect_remote(self.remote)
            return self.inspection
        if self.inspection is None:
            self.disks  # noqa: B018 (resolves the machine)
            self.inspection = engine.inspect(self.sources, self.options.engine, method=self.options.view,
                                             progress=progress, joined=self.joined, machine=self.machine)
            self.engine = engine.resolved(self.options.engine, self.inspection)
        return self.inspection

    def plan(self, given: tuple[list[MountPlan], list[str]] | None = None) -> list[MountPlan]:
        """The mount plan for the options; GIVEN: the same plan, already made by the face that
        showed it (the wizard's Mount step), so it is not computed twice."""
        if self.live:
            return []
        insp = self.inspect()
        assert insp is not None
        if self.remote is not None:
            self.plans = remote_plans(insp)
            return self.plans
        self.plans, self.plan_notes = given or plan_mounts(insp, self.options.root, self.options.use_fstab,
                                                           self.options.disabled)
        self.joined.keep_only({p.fs_id for p in self.plans if p.enabled})
        return self.plans

    def prepare(self, progress=None, output_dir: Path | None = None) -> Prepared:
        """Assemble the tree (attach and mount, or open the readers); estimate sizes; sanitise."""
        plans = self.plans or self.plan()
        disks = [] if self.live or self.remote else self.disks
        req = Request(self.session, disks[0] if disks else self.source, self.live, plans, self.options, self.joined,
                      output_dir, progress or (lambda m: None), disks,
                      self.machine.disk_snapshot if self.machine else "", self.remote,
                      self.inspection if self.remote else None)
        a = ENGINES[self.engine].prepare(req)
        facts = a.facts
        self.prepared = Prepared(a.tree, a.mounted, a.used_bytes, a.saving, max(a.used_bytes - a.saving, 0),
                                 a.sanitized, self.plan_notes + a.notes, pick_shell(facts.shells),
                                 facts.os.pretty_name if facts.os else "")
        return self.prepared

    def estimates(self) -> dict[str, int]:
        """Bytes each preset would leave out of the assembled tree (walks only those parts)."""
        p = self.prepared or self.prepare()
        if self._estimates is None:
            self._estimates = p.tree.estimates([m.mountpoint for m in p.mounted])
        return self._estimates

    def run_plan(self) -> RunPlan:
        """How the image runs (--run), from what the prepared guest runs; shell mode reads nothing."""
        from vm2c_tui.convert.services import guest_services

        p = self.prepared or self.prepare()
        if self._run is None or self._run.mode != self.options.run:
            guest = guest_services(self) if self.options.run != "shell" else None
            self._run = plan_run(self.options.run, guest, p.shell, self.options.sanitize)
        return self._run

    def labels(self) -> dict[str, str]:
        p = self.prepared
        fs_id = self.source if self.live else (self.plans[0].fs_id if self.plans else "")
        return {"org.vm2c.source": os.path.basename(self.source), "org.vm2c.root": fs_id,
                "org.vm2c.os": p.os_name if p else "", "org.vm2c.version": __version__}

    def write_archive(self, outdir: Path, on_progress: ProgressFn | None = None) -> ArchiveResult:
        p = self.prepared or self.prepare(output_dir=outdir)
        outdir_make(outdir)
        need = int(p.expected_bytes * 1.05) + (16 << 20)
        free = free_space(str(outdir))
        if free < need:
            raise Vm2cError(f"{outdir}: only {free >> 20} MiB free, the archive needs about {need >> 20} MiB")
        tar, dockerfile = outdir / "img.tar", outdir / "Dockerfile"
        for name in (tar, dockerfile):  # a planted link is refused before the work, not after it
            refuse_odd(name)
        runlayer.refuse_odd(outdir)
        run = self.run_plan()  # a mode the guest cannot run is refused before the work too
        try:
            final = p.tree.write(tar, total=p.expected_bytes, on_progress=on_progress)
        except Vm2cError as err:
            raise self.explain(err) from err
        wh = p.whiteout_note()
        if wh and wh not in p.notes:
            p.notes.append(wh)
        labels = self.labels()
        if self.options.sparse:  # Docker cannot save a layer with sparse members: no recipe for one
            dockerfile.unlink(missing_ok=True)
        else:
            write_new(dockerfile, dockerfile_text(p.shell, labels, run=run).encode())
            if run.mode == "shell":
                runlayer.clear(outdir)
            else:
                runlayer.write_context(outdir / runlayer.DIR, run)
        return ArchiveResult(tar, dockerfile, final.bytes_done, final.files_done, final.elapsed, p, labels)

    def explain(self, err: Vm2cError) -> Vm2cError:
        """ERR said as what it is when a helper it read through had ended first (tar's I/O error
        on a view whose ssh link dropped is the link, not the disk)."""
        lost = self.session.lost()
        if not lost:
            return err
        return Vm2cError(f"{', '.join(lost)}: ended midway, so the read failed ({err.message})",
                         exit_code=err.exit_code)

    def stream(self, on_progress: ProgressFn | None = None):
        if self.options.sparse:
            raise Vm2cError("sparse members are for a tar kept as a file: Docker cannot save a layer holding them")
        p = self.prepared or self.prepare()
        return p.tree.stream(total=p.expected_bytes, on_progress=on_progress)
