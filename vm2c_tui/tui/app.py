"""The wizard's App: owns the conversion (so it outlives screens) and its workers."""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path

from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.worker import Worker, WorkerState

from vm2c_tui.convert.conversion import Conversion, Prepared
from vm2c_tui.convert.dryrun import render_commands
from vm2c_tui.errors import NoDaemon, Vm2cError
from vm2c_tui.host.outfile import write_new
from vm2c_tui.host.run import shell_line
from vm2c_tui.image import flow
from vm2c_tui.image.dockerfile import dockerfile_text, image_commands
from vm2c_tui.image.loadable import write_image_archive
from vm2c_tui.tui.messages import ArchiveDone, ArchiveProgress, BuildDone, BuildLog, Saved, ServicesRead, StatusNote
from vm2c_tui.tui.screens.base import StepScreen
from vm2c_tui.tui.state import WizardState
from vm2c_tui.tui.steps import STEPS


class Cancelled(Exception):
    pass


class Vm2cApp(App):
    CSS_PATH = "app.tcss"
    STEPS = STEPS
    TITLE = "vm2c"
    SUB_TITLE = "VM disk image → Docker image"
    BINDINGS = [
        Binding("c", "toggle_commands", "Commands"),
        Binding("f1", "help", "Help"),  # shown: it works in text fields too, where ? is typed
        Binding("question_mark", "help", "Help", show=False),
        Binding("q", "quit_wizard", "Quit"),
        Binding("ctrl+q", "quit_wizard", "Quit", show=False, priority=True),
    ]

    def __init__(self, source: str | None = None, browse_root: str | None = None,
                 engine: str | None = None) -> None:
        super().__init__()
        self.state = WizardState()
        self.state.options.engine = engine
        self.initial_source = os.path.abspath(source) if source else None
        self.browse_root = browse_root or (os.path.dirname(self.initial_source) if self.initial_source else os.getcwd())
        self.commands_visible = False
        self._cancel = threading.Event()
        self._lock = threading.Lock()

    def on_mount(self) -> None:
        self.go("source")
        if self.initial_source:
            self.state.source = self.initial_source
            try:
                from vm2c_tui.source.identify import identify
                from vm2c_tui.source.vm.resolve import describe

                vm = describe(self.initial_source)  # an OVA's disk is identified once unpacked
                self.state.info = None if vm.needs_unpack else identify(Path(vm.disks[0].path))
            except Vm2cError as exc:
                self.screen.show_error(exc.message)
                return
            self.go("partitions")

    def go(self, step: str) -> None:
        """Forward to STEP (a name in STEPS); Esc on a step goes back."""
        self.push_screen(self.STEPS[step]())

    def get_system_commands(self, screen):
        """The palette (ctrl+p) offers each step's actions beside Textual's own (themes ...)."""
        yield from super().get_system_commands(screen)
        if not isinstance(screen, StepScreen):
            return
        yield SystemCommand("Next step", "the step's primary action, as ctrl+n", screen.action_forward)
        yield SystemCommand("Back", "the step before, as esc", screen.action_back)
        yield SystemCommand("Commands panel", "the shell commands behind this step, as c", self.action_toggle_commands)
        yield SystemCommand("Help for this step", "what it does and what vm2c does behind it, as f1",
                            self.action_help)
        for title, help_text, callback in screen.palette():
            yield SystemCommand(title, help_text, callback)

    # -- everywhere --------------------------------------------------------
    def action_toggle_commands(self) -> None:
        self.commands_visible = not self.commands_visible
        from vm2c_tui.tui.widgets.commands import CommandsPanel

        for panel in self.screen.query(CommandsPanel):
            panel.set_class(not self.commands_visible, "hidden")
            if self.commands_visible:
                panel.show_lines(self.command_lines())

    def command_lines(self) -> list[str]:
        """Done and next, as shell commands: the same text as `vm2c archive --dry-run`."""
        s = self.state
        if not s.source:
            return ["# choose a disk image; vm2c will start with:", "vm2c inspect DISK"]
        if s.inspection is None and s.source != "/":
            disk = str(s.info.path) if s.info else s.source
            return [shell_line(["vm2c", "inspect", s.source]),
                    shell_line(["qemu-img", "info", "--output=json", disk])]
        try:
            conv = s.conversion or Conversion(s.source, s.options, s.inspection, machine=s.machine())
            lines = render_commands(conv, str(s.output_dir))
        except Vm2cError as exc:
            return [f"# {exc.message}"]
        shell = s.archive.prepared.shell if s.archive else "/bin/sh"
        try:
            run = s.run_plan(shell)
        except Vm2cError as exc:
            return [*lines, f"# {exc.message}"]
        lines += image_commands(str(s.output_dir), s.tag or s.default_tag(), s.method, shell, conv.labels(), run)
        return lines

    def action_help(self) -> None:
        """What this step does and what vm2c does behind it (helptext.py)."""
        from vm2c_tui.tui.screens.help import HelpScreen

        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(type(self.screen).__name__))

    async def action_quit_wizard(self) -> None:
        """Stop a running archive (tar is killed, the partial file removed), release, exit 0."""
        self._cancel.set()
        running = [w for w in self.workers if w.group == "archive" and w.is_running]
        for w in running:
            await asyncio.wait_for(asyncio.shield(w.wait()), timeout=30)
        self.state.close()
        self.exit(0)

    def on_unmount(self) -> None:
        self._cancel.set()
        self.state.close()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """The one place an unexpected failure in a worker becomes words on the screen."""
        if event.state != WorkerState.ERROR:
            return
        error = event.worker.error
        message = error.message if isinstance(error, Vm2cError) else f"unexpected error: {error!r}"
        if event.worker.group == "archive":
            self.state.release()
        show = getattr(self.screen, "show_error", None)
        if show:
            show(message)

    # -- the conversion (owned here, so it outlives the screens) ------------
    def prepare_conversion(self) -> tuple[Conversion, Prepared]:
        """Open (or reuse) the conversion for the current options, with the mount plan the Mount
        step shows (state.mount_plan); thread-safe. The conversion is returned with what it
        prepared: another worker may replace state.conversion meanwhile."""
        s = self.state
        with self._lock:
            if s.conversion is not None and s.prepared_for == s.options_key() and s.conversion.prepared:
                return s.conversion, s.conversion.prepared
            s.release()
            conv = Conversion(s.source, s.options, s.inspection, machine=s.machine())
            conv.__enter__()
            s.conversion = conv
            try:
                conv.inspect()
                conv.plan(given=None if conv.live or conv.remote else s.mount_plan())
                prep = conv.prepare(output_dir=s.output_dir)
            except BaseException:
                s.release()
                raise
            s.prepared_for = s.options_key()
            return conv, prep

    def archive_running(self) -> bool:
        return any(w.group == "archive" and w.is_running for w in self.workers)

    def start_archive(self, screen) -> None:
        self._cancel.clear()
        self.state.services, self.state.run_mode = None, "shell"  # read again from this archive's tree
        self._archive(screen)

    def cancel_archive(self) -> None:
        self._cancel.set()

    @work(thread=True, exclusive=True, group="archive", exit_on_error=False)
    def _archive(self, screen) -> None:
        s = self.state

        def progress(p) -> None:
            if self._cancel.is_set():
                raise Cancelled()
            screen.post_message(ArchiveProgress(p))

        try:
            screen.post_message(StatusNote("mounting read-only…"))
            conv, _ = self.prepare_conversion()
            self._read_services(conv, screen)
            result = conv.write_archive(s.output_dir, progress)
        except Cancelled:
            screen.post_message(ArchiveDone())
            return
        except Vm2cError as exc:
            screen.post_message(ArchiveDone(error=exc.message))
            return
        finally:  # written or not, nothing needs to stay mounted for the build
            s.release()
        screen.post_message(ArchiveDone(result))

    @staticmethod
    def _read_services(conv, screen) -> None:
        """What the guest runs, read from the tree mounted for the archive (the Build step's run modes)."""
        from vm2c_tui.convert.services import guest_services

        try:
            screen.post_message(ServicesRead(guest_services(conv)))
        except Vm2cError as exc:  # e.g. a machine over SSH: only shell mode then
            screen.post_message(ServicesRead(error=exc.message))

    def start_build(self, screen, shell: str) -> None:
        self._build(screen, shell)

    @work(thread=True, exclusive=True, group="build", exit_on_error=False)
    def _build(self, screen, shell: str) -> None:
        from vm2c_tui.image import runlayer
        from vm2c_tui.image.compose import write_run_files

        s = self.state
        res = s.archive
        try:
            run = s.run_plan(shell)
            outdir = res.tar.parent  # the run layer's context lands there for either route, as the panel shows
            recipe = flow.Recipe(s.tag, s.method, shell, res.labels, run=run,
                                 run_context=None if run.mode == "shell" else outdir / runlayer.DIR)
            flow.check(recipe, res.tar.stat().st_size, hint="; or save an image archive instead")
            if run.mode == "shell":
                runlayer.clear(outdir)
            else:
                runlayer.write_context(outdir / runlayer.DIR, run)
            if s.method == "dockerfile":  # the shell and run mode chosen here, not those of archive time
                write_new(res.dockerfile, dockerfile_text(shell, res.labels, run=run).encode())
            built = flow.make(recipe, tar=res.tar, on_log=lambda line: screen.post_message(BuildLog(line)))
            for path in write_run_files(outdir, s.tag, run, built.cgroup):
                screen.post_message(BuildLog(f"wrote {path}"))
        except Vm2cError as exc:
            screen.post_message(BuildDone(error=exc.message, no_daemon=isinstance(exc, NoDaemon)))
            return
        screen.post_message(BuildDone(built, run=run))

    @work(thread=True, exclusive=True, group="build", exit_on_error=False)
    def start_save(self, screen, shell: str) -> None:
        from vm2c_tui.host.system import cgroup_version
        from vm2c_tui.image.compose import write_run_files

        s = self.state
        dest = s.archive.tar.parent / "image-archive.tar"
        try:
            run = s.run_plan(shell)  # the chosen mode goes into the archive too (its second layer)
            load = write_image_archive(s.archive.tar, dest, s.tag, shell, s.archive.labels, run)
            written = write_run_files(dest.parent, s.tag, run, cgroup_version())
        except Vm2cError as exc:
            screen.post_message(Saved(error=exc.message))
            return
        also = f" (and {', '.join(p.name for p in written)})" if written else ""
        screen.post_message(Saved(f"✓ wrote {dest}{also}; load it with: {load}"))


def run_app(source: str | None = None, engine: str | None = None) -> int:
    app = Vm2cApp(source, engine=engine)
    try:
        app.run()
    finally:  # SIGTERM or a crash: still release what the conversion holds
        app._cancel.set()
        app.state.close()
    return app.return_code or 0
