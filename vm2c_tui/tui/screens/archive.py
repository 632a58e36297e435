"""Step 4: the tar, with progress; cancelling releases everything."""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, ProgressBar, Static

from vm2c_tui.text import human, safe
from vm2c_tui.tui.messages import ArchiveDone, ArchiveProgress, ServicesRead, StatusNote
from vm2c_tui.tui.screens.base import StepScreen
from vm2c_tui.tui.screens.confirm import Confirm


class ArchiveScreen(StepScreen):
    NAME = "archive"
    TITLES = {"#progress-box": "Progress", "#services": "What the guest runs"}
    FORWARD = ("#next", "#start")  # the primary action while there is one, then on

    def palette(self) -> list[tuple[str, str, object]]:
        return [("Start the archive", "write img.tar and the Dockerfile", lambda: self.press("#start")),
                ("Cancel the archive", "stop tar, remove the partial file, unmount", lambda: self.press("#cancel"))]

    def compose_body(self) -> ComposeResult:
        yield Static(id="archive-status")
        with Vertical(id="progress-box"):
            yield ProgressBar(total=100, show_eta=False, id="progress")
            yield Static(id="figures")
            yield Static(id="current")
        yield Static(id="archive-result")
        yield Static(id="services", classes="hidden")
        with Horizontal(classes="buttons"):
            yield Button("Start", id="start", variant="primary")
            yield Button("Cancel", id="cancel", variant="error", disabled=True)
            yield Button("Build ▸", id="next", variant="primary", disabled=True)

    def on_mount(self) -> None:
        super().on_mount()
        state = self.app.state
        self.query_one("#archive-status", Static).update(Text(
            f"{safe(state.source, 60)} -> {safe(str(state.output_dir), 60)}/img.tar", style="bold"))
        if state.archive is not None:
            self.finished(ArchiveDone(state.archive))
        if state.services is not None:
            self.services_read(ServicesRead(state.services))

    @on(Button.Pressed, "#start")
    def start(self) -> None:
        self.query_one("#start", Button).disabled = True
        self.query_one("#cancel", Button).disabled = False
        self.primary_changed()
        self.show_error(None)
        self.app.start_archive(self)

    def on_archive_progress(self, msg: ArchiveProgress) -> None:
        p = msg.progress
        self.query_one(ProgressBar).update(total=100, progress=100 * p.fraction)
        eta = f"{p.eta:.0f}s" if p.eta is not None else "-"
        files = f"{p.files_done}/{p.files_total}" if p.files_total else str(p.files_done)
        self.query_one("#figures", Static).update(
            f"{human(p.bytes_done)} of ~{human(p.bytes_total)}   {files} files   {human(p.rate)}/s   ETA {eta}")
        self.query_one("#current", Static).update(Text(safe(p.current, 76), style="dim"))

    def on_status_note(self, msg: StatusNote) -> None:
        self.query_one("#current", Static).update(Text(msg.text, style="dim"))

    @on(ServicesRead)
    def services_read(self, msg: ServicesRead) -> None:
        self.app.state.services = msg.services  # shared state is written here, on the UI thread
        panel = self.query_one("#services", Static)
        panel.remove_class("hidden")
        if msg.services is None:
            panel.update(Text(f"not read: {safe(msg.error, 90)} (the Build step offers shell mode)", style="dim"))
            return
        panel.update(services_text(msg.services))

    @on(ArchiveDone)
    def finished(self, msg: ArchiveDone) -> None:
        self.query_one("#cancel", Button).disabled = True
        res = self.app.state.archive = msg.result  # shared state is written here, on the UI thread
        self.refresh_commands()
        if res is None:
            self.query_one("#start", Button).disabled = False
            self.primary_changed()
            self.show_error(msg.error or "archive cancelled; everything was released")
            return
        self.query_one(ProgressBar).update(total=100, progress=100)
        t = Text()
        t.append(f"✓ {res.tar}: {human(res.size)}, {res.files} entries in {res.seconds:.1f}s\n", style="bold green")
        for s in res.prepared.sanitized:
            t.append(f"  sanitised: {safe(s, 70)}\n")
        for n in res.prepared.notes[:4]:
            t.append(f"  {safe(n, 74)}\n", style="yellow")
        self.query_one("#archive-result", Static).update(t)
        self.query_one("#start", Button).disabled = True
        self.query_one("#next", Button).disabled = False
        self.query_one("#next", Button).focus()
        self.primary_changed()

    @on(Button.Pressed, "#cancel")
    def cancel(self) -> None:
        def answer(yes: bool | None) -> None:
            if yes:
                self.app.cancel_archive()

        self.app.push_screen(Confirm("Cancel the archive? The partial img.tar is removed and "
                                     "everything is unmounted."), answer)

    def action_back(self) -> None:
        if self.app.archive_running():
            self.cancel()
        else:
            super().action_back()

    @on(Button.Pressed, "#next")
    def next_step(self) -> None:
        self.app.go("build")


def services_text(found) -> Text:
    """The guest's init, services with their ports, data directories and run modes, in a few lines."""
    t = Text()
    t.append(f"init {found.init}", style="bold")
    t.append(f"  {safe(found.init_path, 40)}\n" if found.init_path else "\n")
    for s in [s for s in found.services if s.name.endswith(".service")][:6]:
        ports = " :" + ",".join(map(str, s.ports)) if s.ports else ""
        t.append(f"  {safe(s.name, 32)}{ports}  {safe(s.user or 'root', 12)}\n")
    if found.data_dirs:
        t.append("data: " + ", ".join(f"{safe(p, 30)} {human(b)}" for p, b, _ in found.data_dirs[:5]) + "\n")
    t.append("run as (Build step): " + ", ".join(found.run_modes), style="cyan")
    return t
