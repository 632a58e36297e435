"""Step 3: what gets mounted where, how the disk is read, what is left out."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import (
    Button,
    Checkbox,
    Input,
    Label,
    RadioButton,
    RadioSet,
    Static,
    Switch,
)

from vm2c_tui.errors import Vm2cError
from vm2c_tui.host.system import free_space
from vm2c_tui.plan.presets import PRESETS
from vm2c_tui.read import engine, userspace
from vm2c_tui.source.ssh import SERVICE, is_remote_machine
from vm2c_tui.text import human, safe
from vm2c_tui.tui.messages import Estimated
from vm2c_tui.tui.screens.base import StepScreen
from vm2c_tui.tui.screens.confirm import Confirm
from vm2c_tui.tui.screens.explore import ExploreScreen


class MountScreen(StepScreen):
    NAME = "mount"
    plans: tuple = ()  # the mount plan, once on_mount has made it

    def compose_body(self) -> ComposeResult:
        state = self.app.state
        with VerticalScroll(id="mount-main"):
            with Vertical(id="mounts"):
                yield Static(id="root-line")
            yield Static(id="read-with")
            with Horizontal(id="options-row"):
                with RadioSet(id="preset"):
                    for name in PRESETS:
                        yield RadioButton(name, value=name == state.options.preset, name=name)
                with Vertical(id="switches"):
                    with Horizontal(classes="switch-row"):
                        yield Switch(value=state.options.sanitize, id="sanitize")
                        yield Label("sanitise (empty machine-id, no host keys)")
                    if state.source != "/" and not is_remote_machine(state.source or "") and userspace.available():
                        with Horizontal(classes="switch-row"):
                            # held when there is no kernel route; for an LV in pieces the
                            # kernel route is a choice too, its joined copy named in #read-with
                            only = not engine.kernel_route_available()
                            yield Switch(value=engine.resolved(state.options.engine, state.inspection) == "userspace",
                                         id="engine", disabled=only)
                            yield Label("read in user space (no mounts)")
                    yield Static(id="estimate")
            if is_remote_machine(state.source or "") and state.inspection is not None:
                tool = next(iter(state.inspection.compressors), "")
                with Horizontal(classes="switch-row", id="compress-row"):
                    yield Switch(value=bool(state.options.compress), id="compress", disabled=not tool)
                    yield Label(f"compress on the wire ({tool} there, unpacked here; for a slow link)" if tool
                                else "compress on the wire (neither zstd nor gzip there)")
                running = ", ".join(state.inspection.services[:8]) or "none seen"
                with Horizontal(id="stop-row"):
                    yield Label("Stop while tar reads ")
                    yield Input(", ".join(state.options.stop_services), id="stop",
                                placeholder=f"services, comma-separated (running: {safe(running, 120)})")
            with Vertical(id="output"):
                with Horizontal(id="out-row"):
                    yield Label("Output dir ")
                    yield Input(str(state.output_dir), id="outdir")
                yield Static(id="free")
        with Horizontal(classes="buttons"):
            yield Button("Archive ▸", id="next", variant="primary")

    BINDINGS = [Binding("e", "explore", "Explore sizes")]
    TITLES = {"#mounts": "Mounts", "#read-with": "How it is read", "#preset": "Exclude preset",
              "#switches": "Options", "#output": "Output"}

    def on_mount(self) -> None:
        super().on_mount()
        state = self.app.state
        mounts = self.query_one("#mounts", Vertical)
        if state.source == "/":
            self.query_one("#root-line", Static).update(Text(
                "This running machine: tar of / with --one-file-system (stop services first: "
                "the copy may be inconsistent)", style="bold"))
        elif is_remote_machine(state.source or ""):
            kept = ", ".join(m.mountpoint for m in state.inspection.archived)
            self.query_one("#root-line", Static).update(Text(
                f"{safe(state.source, 60)}: GNU tar runs there over ssh and streams back (nothing is written "
                f"there); archived: {safe(kept, 200)}", style="bold"))
        else:
            try:
                plans, notes = state.mount_plan()
            except Vm2cError as exc:
                self.show_error(exc.message)
                return
            self.plans = plans
            root = plans[0]
            self.query_one("#root-line", Static).update(
                Text(f"Root: {root.fs_id} ({root.fstype}) at /", style="bold"))
            for p in plans[1:]:
                mounts.mount(Checkbox(f"{p.fs_id} at {safe(p.mountpoint, 40)} ({p.fstype})",
                                      value=p.fs_id not in state.options.disabled, name=p.fs_id))
            for n in notes:
                mounts.mount(Static(Text(safe(n, 100), style="dim")))
            self.show_method()
        self.update_free()
        self.estimate()
        self.call_after_refresh(self._first_choice)

    def _first_choice(self) -> None:
        """Focus starts on the first choice (a mount to keep, else the preset), not on a button."""
        boxes = self.query("#mounts Checkbox")
        (boxes.first() if boxes else self.query_one("#preset", RadioSet)).focus()

    def show_method(self) -> None:
        state = self.app.state
        if engine.resolved(state.options.engine, state.inspection) == "userspace":
            line = "Read with: the user-space engine (no root, loop device, mount or tar process)"
        else:
            name, why = state.inspection.raw_method, state.inspection.raw_why  # the view inspect used
            line = f"Read with: read-only loop mounts; raw view: {name} ({why})"
            planned = {p.fs_id for p in self.plans}
            for v in state.inspection.in_pieces():
                if v.id in planned:  # the copy is as large as the LV at most (only its data is copied)
                    line += (f"; {v.id} is in {len(v.extents)} pieces: first copied joined into TMPDIR "
                             f"(up to {v.size >> 20} MiB; user space reads it in place)")
        self.query_one("#read-with", Static).update(Text(line))

    @on(Switch.Changed, "#engine")
    def engine_switched(self, event: Switch.Changed) -> None:
        self.app.state.options.engine = "userspace" if event.value else "kernel"
        self.show_method()
        self.estimate()

    @on(Checkbox.Changed)
    def toggled(self, event: Checkbox.Changed) -> None:
        disabled = self.app.state.options.disabled
        (disabled.discard if event.value else disabled.add)(event.checkbox.name)
        self.estimate()

    @on(RadioSet.Changed, "#preset")
    def preset(self, event: RadioSet.Changed) -> None:
        self.app.state.options.preset = event.pressed.name
        self.refresh_commands()
        self.show_estimates()

    @on(Switch.Changed, "#compress")
    def compress(self, event: Switch.Changed) -> None:
        tools = self.app.state.inspection.compressors
        self.app.state.options.compress = tools[0] if event.value and tools else ""
        self.refresh_commands()

    @on(Switch.Changed, "#sanitize")
    def sanitize(self, event: Switch.Changed) -> None:
        self.app.state.options.sanitize = event.value
        self.estimate()

    @on(Input.Changed, "#outdir")
    def outdir(self, event: Input.Changed) -> None:
        self.app.state.output_dir = Path(event.value).expanduser()
        self.update_free()
        self.refresh_commands()

    def update_free(self) -> None:
        out = self.app.state.output_dir
        try:
            free = human(free_space(str(out.resolve())))
        except OSError:
            free = "?"
        self.query_one("#free", Static).update(Text(f"free there: {free}", style="dim"))

    @work(thread=True, exclusive=True, group="prepare")
    def estimate(self) -> None:
        """Mount (read-only) now, so the presets' savings are real figures."""
        self.app.call_from_thread(self._estimating)  # the DOM is the main thread's to read
        conv = None
        try:
            conv, _ = self.app.prepare_conversion()
            estimates = conv.estimates()
        except Exception as exc:
            if conv is not None and conv is not self.app.state.conversion:
                return  # a newer choice replaced this conversion while it was measured
            if not isinstance(exc, Vm2cError):
                raise
            self.app.call_from_thread(self.show_error, exc.message)
            return
        self.post_message(Estimated(estimates))

    def _estimating(self) -> None:
        for line in self.query("#estimate").results(Static):
            line.update("estimating…")

    @on(Estimated)
    def estimated(self, msg: Estimated) -> None:
        self.estimates = msg.estimates
        self.show_estimates()
        self.refresh_commands()

    def show_estimates(self) -> None:
        prep = self.app.state.conversion.prepared if self.app.state.conversion else None
        estimates = getattr(self, "estimates", None)
        if prep is None or estimates is None:
            return
        for button in self.query("#preset RadioButton").results(RadioButton):
            saved = estimates.get(button.name)  # each preset's saving on its own row
            button.label = f"{button.name:<9} -{human(saved)}" if saved is not None else button.name
        t = Text()
        t.append(f"guest data {human(prep.used_bytes)}, "
                 f"this preset leaves out {human(estimates.get(self.app.state.options.preset))}", style="dim")
        mine = self.app.state.exclude_sizes
        if mine:  # what the explorer's rules leave out, as it sized them
            t.append(f"\nyour {len(mine)} exclude(s) leave out {human(sum(mine.values()))}", style="dim")
        for n in prep.notes[:3]:
            t.append("\n" + safe(n, 90), style="yellow")
        self.query_one("#estimate", Static).update(t)

    def palette(self) -> list[tuple[str, str, object]]:
        return [("Explore sizes", "the biggest directories, to leave some out before archiving (e)",
                 self.action_explore)]

    def action_explore(self) -> None:
        """The disk-usage explorer over the prepared tree (once the estimate has mounted it)."""
        conv = self.app.state.conversion
        if conv is None or conv.prepared is None:
            self.show_error("the tree is still being prepared; try again in a moment")
            return
        def back(_changed) -> None:
            self.refresh_commands()
            self.estimate()  # an exclude is part of the tar's spec: prepared again

        self.app.push_screen(ExploreScreen(conv.prepared.tree), back)

    @on(Input.Changed, "#stop")
    def stop_changed(self, event: Input.Changed | None = None) -> bool:
        """The services typed, into the options; False (and said) when one is not a name."""
        field = self.query("#stop")
        names = [n.strip() for n in field.first(Input).value.split(",") if n.strip()] if field else []
        bad = [n for n in names if not SERVICE.match(n)]
        self.show_error(f"{safe(bad[0], 60)}: not a service name" if bad else None)
        self.app.state.options.stop_services = [] if bad else names
        self.refresh_commands()
        return not bad

    @on(Button.Pressed, "#next")
    def next_step(self) -> None:
        if not self.stop_changed():  # what the field says now (its Changed may still be queued)
            return
        stop = self.app.state.options.stop_services
        if not stop:
            self.app.go("archive")
            return
        self.app.push_screen(Confirm(f"Stop {safe(', '.join(stop), 200)} on {safe(self.app.state.source, 60)} while "
                                     f"tar reads it? They are started again when the copy ends, whether it "
                                     f"succeeds, fails or is cancelled."),
                             lambda yes: self.app.go("archive") if yes else None)
