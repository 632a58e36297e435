"""Step 5: import or build the image, smoke-test it, say what to run next."""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Button, Input, Label, RichLog, Select, Static

from vm2c_tui.image.dockerfile import run_commands
from vm2c_tui.text import human, safe
from vm2c_tui.tui.messages import BuildDone, BuildLog, Saved
from vm2c_tui.tui.screens.base import StepScreen

RUN_LABELS = {"shell": "shell (the classic recipe)", "system": "system (its init as PID 1)"}


class BuildScreen(StepScreen):
    NAME = "build"
    FORWARD = ("#build",)  # the primary action while there is one, then on

    def palette(self) -> list[tuple[str, str, object]]:
        return [("Build the image", "import (or build) it and smoke-test it", lambda: self.press("#build")),
                ("Save an image archive", "a docker-load-able file, no daemon needed", lambda: self.press("#save"))]

    def compose_body(self) -> ComposeResult:
        state = self.app.state
        shell = state.archive.prepared.shell if state.archive else "/bin/sh"
        with Horizontal(id="build-form"):
            yield Select([("import (one pass, keeps all xattrs)", "import"),
                          ("dockerfile (classic ADD img.tar)", "dockerfile")],
                         value=state.method, allow_blank=False, id="method")
            yield Label(" tag ")
            yield Input(state.tag or state.default_tag(), placeholder="REPO:TAG", id="tag")
        with Horizontal(id="cmd-row"):
            yield Label("run as ")
            modes = state.services.run_modes if state.services else ["shell"]
            yield Select([(RUN_LABELS.get(m, m), m) for m in modes], value=state.run_mode if state.run_mode in modes
                         else "shell", allow_blank=False, id="run")
            yield Label(" CMD ")
            yield Input(shell, id="shell", disabled=state.run_mode != "shell")
        log = RichLog(id="log", wrap=True, max_lines=2000)
        log.border_title = "What the daemon does"
        yield log
        yield Static(id="build-result")
        with Horizontal(classes="buttons"):
            yield Button("Build", id="build", variant="primary")
            yield Button("Save image archive", id="save", disabled=True)
            yield Button("Quit", id="quit")

    @on(Select.Changed, "#method")
    def method(self, event: Select.Changed) -> None:
        self.app.state.method = str(event.value)
        self.refresh_commands()

    @on(Select.Changed, "#run")
    def run_mode(self, event: Select.Changed) -> None:
        self.app.state.run_mode = str(event.value)
        self.query_one("#shell", Input).disabled = event.value != "shell"  # the run mode sets the process
        self.refresh_commands()

    @on(Input.Changed, "#tag")
    def tag(self, event: Input.Changed) -> None:
        self.app.state.tag = event.value.strip()
        self.refresh_commands()

    @on(Button.Pressed, "#build")
    def build(self) -> None:
        self.query_one("#build", Button).disabled = True
        self.primary_changed()
        self.show_error(None)
        state = self.app.state
        state.tag = self.query_one("#tag", Input).value.strip()
        self.app.start_build(self, self.query_one("#shell", Input).value.strip() or "/bin/sh")

    @on(Button.Pressed, "#save")
    def save(self) -> None:
        self.app.start_save(self, self.query_one("#shell", Input).value.strip() or "/bin/sh")

    @on(Button.Pressed, "#quit")
    async def quit(self) -> None:
        # the action is a coroutine: called without await it was created and dropped, and
        # the button did nothing (the tests pressed q)
        await self.app.run_action("quit_wizard")

    def on_build_log(self, msg: BuildLog) -> None:
        self.query_one(RichLog).write(Text(safe(msg.line, 300)))

    @on(BuildDone)
    def finished(self, msg: BuildDone) -> None:
        self.query_one("#build", Button).disabled = False
        self.query_one("#save", Button).disabled = not msg.no_daemon
        self.primary_changed()
        if msg.built is None:
            self.show_error(msg.error)
            return
        state = self.app.state
        state.image, state.smoke = msg.built.result, msg.built.smoke  # written on the UI thread
        res, smoke = state.image, state.smoke
        tag = res.tags[0] if res.tags else res.image_id
        t = Text()
        t.append(f"✓ {res.image_id[:19]}  {', '.join(res.tags)}  {human(res.size)}  {res.layers} layer(s)\n",
                 style="bold green")
        if smoke and smoke.mode != "shell":
            ok = "ok" if smoke.ok else "failed (image kept)"
            t.append(f"smoke test of {smoke.mode} {ok}\n", style="" if smoke.ok else "bold red")
            for line in (smoke.detail or [smoke.error])[:3]:
                t.append(f"  {safe(line, 90)}\n")
        elif smoke and smoke.ok:
            pretty = next((l for l in smoke.os_release.splitlines() if l.startswith("PRETTY_NAME=")), "")
            t.append(f"smoke test ok: {smoke.shell} runs, {safe(pretty, 60)}\n")
        elif smoke:
            t.append(f"smoke test failed: {safe(smoke.error, 80)} (image kept)\n", style="bold red")
        if msg.run is not None and msg.run.mode != "shell":
            run = run_commands(tag, msg.run, "/bin/sh")[0]
            t.append(f"next: {safe(run, 200)}\n      compose.yaml and kubernetes.yaml are beside img.tar\n")
        else:
            t.append(f"next: docker run -it --rm {tag} {smoke.shell if smoke else '/bin/sh'}\n")
        t.append(f"      docker save -o image.tar {tag}")
        self.query_one("#build-result", Static).update(t)

    @on(Saved)
    def saved(self, msg: Saved) -> None:
        if msg.error:
            self.query_one("#save", Button).disabled = False
            self.show_error(msg.error)
            return
        self.query_one("#build-result", Static).update(Text(msg.line, style="bold green"))
