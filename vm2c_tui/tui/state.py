"""What the operator has chosen so far; kept on the App so back/next keeps it."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

from vm2c_tui.convert.conversion import ArchiveResult, Conversion, Options
from vm2c_tui.host.session import Session
from vm2c_tui.image.daemon import ImageResult, Smoke
from vm2c_tui.inspect.model import Inspection
from vm2c_tui.inspect.services import GuestServices
from vm2c_tui.plan.mounts import plan_mounts
from vm2c_tui.source.magic import ImageInfo
from vm2c_tui.source.ssh import is_remote_machine
from vm2c_tui.source.vm.model import Machine
from vm2c_tui.source.vm.resolve import open_machine


@dataclass
class WizardState:
    source: str | None = None
    info: ImageInfo | None = None
    inspection: Inspection | None = None
    options: Options = field(default_factory=Options)
    output_dir: Path = field(default_factory=lambda: Path(os.getcwd()) / "vm2c-out")
    conversion: Conversion | None = None
    prepared_for: tuple | None = None  # the options the open conversion was prepared with
    archive: ArchiveResult | None = None
    tag: str = ""
    method: str = "import"
    image: ImageResult | None = None
    smoke: Smoke | None = None
    exclude_sizes: dict[str, int] = field(default_factory=dict)  # explorer's rule -> bytes it leaves out
    services: GuestServices | None = None  # what the guest runs, read while it is mounted for the archive
    run_mode: str = "shell"  # the Build step's choice (--run)
    _plan: tuple | None = field(default=None, repr=False)
    _machine: tuple | None = field(default=None, repr=False)  # (source, Session, Machine)
    _machine_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def machine(self, note=lambda msg: None) -> Machine | None:
        """The VM (or lone disk) the source is, resolved once per source: an OVA's disks are
        unpacked once, into a private directory held until the source changes or the wizard
        ends, and the inspection, the commands panel and the conversion all read them there.
        NOTE: how far a disk image copied from a machine over SSH is (the first call's)."""
        if not self.source or self.source == "/" or is_remote_machine(self.source):
            return None
        with self._machine_lock:
            if self._machine and self._machine[0] == (self.source, self.options.snapshot):
                return self._machine[2]
            self._forget_machine()
            session = Session("wizard", self.source)
            session.__enter__()
            try:
                vm = open_machine(self.source, session, self.options.snapshot, note)
            except BaseException:
                session.close()
                raise
            self._machine = ((self.source, self.options.snapshot), session, vm)
            return vm

    def _forget_machine(self) -> None:
        if self._machine is not None:
            session, self._machine = self._machine[1], None
            session.close()

    def close(self) -> None:
        """The wizard ends: the conversion released, an unpacked OVA removed."""
        self.release()
        with self._machine_lock:
            self._forget_machine()

    def options_key(self) -> tuple:
        o = self.options
        # the preset and an exclude are part of the tar's spec, made when the tree is (a preset
        # chosen after the estimate was ignored before); services to stop belong to the tree too
        return (self.source, o.root, o.use_fstab, tuple(sorted(o.disabled)), o.sanitize, o.engine,
                tuple(o.excludes), o.preset, tuple(o.stop_services), o.compress)

    def mount_plan(self) -> tuple[list, list[str]]:
        """The mount plan for the current choices: what the Mount step shows and the conversion
        mounts are one computation (plan_mounts), made again only when a choice changes."""
        o = self.options
        key = (id(self.inspection), o.root, o.use_fstab, tuple(sorted(o.disabled)))
        if self._plan is None or self._plan[0] != key:
            self._plan = (key, plan_mounts(self.inspection, o.root, o.use_fstab, o.disabled))
        return self._plan[1]

    def choose_root(self, root: str | None) -> None:
        """A new root, or a new disk (None: the detected one): the open conversion is released and
        the choices made on the old tree (mounts switched off, entries left out) go with it."""
        self.release()
        self.options.root = root
        self.options.disabled = set()
        self.options.excludes = []
        self.exclude_sizes = {}

    def release(self) -> None:
        """Unmount and detach whatever the open conversion holds."""
        if self.conversion is not None:
            conv, self.conversion, self.prepared_for = self.conversion, None, None
            conv.close()

    def run_plan(self, shell: str):
        """The Build step's run mode as a plan (plan/runplan.py); raises Vm2cError when it cannot be."""
        from vm2c_tui.plan.runplan import plan_run

        return plan_run(self.run_mode, self.services, shell, self.options.sanitize)

    def default_tag(self) -> str:
        from vm2c_tui.image.compose import default_tag

        return default_tag(self.source)
