"""Step 1: pick a disk image (the tree shows disk images only, by content)."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, DirectoryTree, Input, Static

from vm2c_tui.errors import Vm2cError
from vm2c_tui.host.system import holder_warning
from vm2c_tui.inspect.remote import inspect_remote
from vm2c_tui.source.identify import identify
from vm2c_tui.source.magic import looks_like_disk
from vm2c_tui.source.ssh import Remote, UnknownHostKey, is_remote_machine
from vm2c_tui.source.vdichain import STALE
from vm2c_tui.source.vm.resolve import describe, kind_of
from vm2c_tui.text import safe
from vm2c_tui.tui.screens.base import StepScreen
from vm2c_tui.tui.screens.confirm import Confirm
from vm2c_tui.tui.screens.sshform import SshForm
from vm2c_tui.tui.sourceinfo import describe_remote, describe_source


class DiskImageTree(DirectoryTree):
    def filter_paths(self, paths):
        for p in paths:
            if p.name.startswith("."):
                continue
            if p.is_dir() or looks_like_disk(p) or kind_of(p) != "disk":  # disks and VMs, by content
                yield p


class SourceScreen(StepScreen):
    NAME = "source"
    TITLES = {"#tree": "Files that look like disks", "#source-info": "The image"}

    def compose_body(self) -> ComposeResult:
        yield Input(placeholder="a disk image, a VM, or ssh://user@host[:port] (Enter to check it)", id="path")
        with Horizontal(id="source-main"):
            yield DiskImageTree(self.app.browse_root, id="tree")
            with Vertical(id="source-info"):
                yield Static("Choose a disk image on the left, or type its path above.", id="info")
                yield Static(id="holder", classes="hidden")
        with Horizontal(classes="buttons"):
            yield Button("This running machine", id="live")
            yield Button("A machine over SSH", id="ssh")
            yield Button("Inspect ▸", id="next", variant="primary", disabled=True)

    def on_mount(self) -> None:
        super().on_mount()
        if self.app.state.source and self.app.state.source != "/":
            self.query_one("#path", Input).value = self.app.state.source
            self.check(self.app.state.source)

    @on(DirectoryTree.FileSelected)
    def picked(self, event: DirectoryTree.FileSelected) -> None:
        self.query_one("#path", Input).value = str(event.path)
        self.check(str(event.path))

    @on(Input.Submitted, "#path")
    def typed(self, event: Input.Submitted) -> None:
        self.go_on = True  # Enter on a path that checks out goes on to the partitions
        self.check(event.value.strip())

    @work(thread=True, exclusive=True, group="identify")
    def check(self, path: str) -> None:
        if is_remote_machine(path):  # a machine over SSH: its mount table is what the partitions are for a disk
            try:
                insp = inspect_remote(Remote.parse(path, self.app.state.options.sudo))
            except UnknownHostKey as exc:  # a question for the operator, not an error
                self.app.call_from_thread(self.ask_host_key, path, exc)
                return
            except Vm2cError as exc:
                self.app.call_from_thread(self.identified, None, None, exc.message)
                return
            self.app.call_from_thread(self.remote_found, insp)
            return
        try:
            vm = describe(path)
            info = None if vm.needs_unpack else identify(Path(vm.disks[0].path))  # an OVA's is unpacked later
            warnings = [w for w in [holder_warning(vm.disks[0].path)] + (info.warnings if info else []) if w
                        if STALE in w or w.startswith(vm.disks[0].path + " is open")]
        except Vm2cError as exc:
            self.app.call_from_thread(self.identified, None, None, exc.message)
            return
        self.app.call_from_thread(self.identified, (vm, info), "\n".join(warnings), None)

    def identified(self, found, warning, error) -> None:
        self.show_error(error)
        state = self.app.state
        self.query_one("#next", Button).disabled = found is None
        self.primary_changed()
        go_on, self.go_on = getattr(self, "go_on", False), False
        holder = self.query_one("#holder", Static)
        if found is None:
            self.query_one("#info", Static).update("")
            holder.set_class(True, "hidden")
            return
        vm, info = found
        source = vm.definition if vm.is_vm else str(info.path)
        if state.source != source:
            state.choose_root(None)
            state.inspection = None
        state.source, state.info = source, info
        self.query_one("#info", Static).update(describe_source(vm, info))
        holder.update(Text(safe(warning, 400), style="bold red") if warning else "")
        holder.set_class(not warning, "hidden")
        self.refresh_commands()
        if go_on:  # a holder's warning is shown again on the partitions step
            self.app.go("partitions")

    def remote_found(self, insp) -> None:
        state = self.app.state
        self.show_error(None)
        if state.source != insp.source:
            state.choose_root(None)
        state.source, state.info, state.inspection = insp.source, None, insp
        self.query_one("#info", Static).update(describe_remote(insp))
        holder = self.query_one("#holder", Static)
        warning = "\n".join(insp.warnings)
        holder.update(Text(safe(warning, 600), style="bold red") if warning else "")
        holder.set_class(not warning, "hidden")
        self.query_one("#next", Button).disabled = False
        self.primary_changed()
        self.refresh_commands()
        go_on, self.go_on = getattr(self, "go_on", False), False
        if go_on:
            self.next_step()

    @on(Button.Pressed, "#next")
    def next_step(self) -> None:
        self.app.go("mount" if is_remote_machine(self.app.state.source or "") else "partitions")

    def ask_host_key(self, path: str, exc: UnknownHostKey) -> None:
        """An unknown host key: shown, and added to known_hosts only if the operator says so."""
        self.show_error(None)
        host = Remote.parse(path)
        if not exc.keys:
            self.show_error(exc.message)
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.trust(path, exc.keys)
            else:
                self.show_error(f"{host.url}: its host key was not trusted; nothing was read")

        self.app.push_screen(Confirm(f"{host.url} is not in your known_hosts. Its host key:\n\n"
                                     f"{safe(exc.fingerprints, 300)}\n\nCompare it with what the machine's owner "
                                     f"says it is. Trust it and add it to known_hosts?"), answered)

    @work(thread=True, exclusive=True, group="identify")
    def trust(self, path: str, keys: bytes) -> None:
        try:
            Remote.parse(path).trust(keys)
        except (Vm2cError, OSError) as exc:
            self.app.call_from_thread(self.show_error, getattr(exc, "message", None) or str(exc))
            return
        self.app.call_from_thread(self.check, path)

    @on(Button.Pressed, "#ssh")
    def ssh(self) -> None:
        def given(url: str | None) -> None:
            if url:
                self.query_one("#path", Input).value = url
                self.go_on = True
                self.check(url)

        self.app.push_screen(SshForm(), given)

    @on(Button.Pressed, "#live")
    def live(self) -> None:
        state = self.app.state
        state.release()
        state.source, state.info, state.inspection = "/", None, None
        self.app.go("mount")
