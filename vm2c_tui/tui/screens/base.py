"""What every step shares: the step bar, the error line, the commands panel."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import Button, Footer, Static

from vm2c_tui.tui.messages import StepFailed
from vm2c_tui.tui.widgets.commands import CommandsPanel


class StepScreen(Screen):
    NAME = "source"  # this step's name in the App's STEPS (tui/steps.py)
    # ctrl+n works wherever focus is (a text field too): one key forward, shown dimmed while the
    # step's primary action is not possible yet, and it never toggles a choice on its way
    BINDINGS = [Binding("escape", "back", "Back"), Binding("ctrl+n", "forward", "Next", priority=True)]
    FORWARD: tuple[str, ...] = ("#next",)  # the primary buttons, the first enabled one is pressed
    TITLES: dict[str, str] = {}  # panel -> its border title, so the screen explains itself

    def compose(self) -> ComposeResult:
        bar = Text()
        names = list(self.app.STEPS)
        for i, name in enumerate(names):
            style = "bold reverse" if name == self.NAME else "dim"
            bar.append(f" {i + 1} {name.capitalize()} ", style=style)
            if i < len(names) - 1:
                bar.append(" › ", style="dim")
        yield Static(bar, id="steps")
        with Vertical(id="body"):
            yield from self.compose_body()
        yield Static(id="error", classes="hidden")
        yield CommandsPanel(id="commands")
        yield Footer()

    def compose_body(self) -> ComposeResult:
        yield from ()

    def _enabled(self, *selectors: str) -> Button | None:
        """The first of these buttons that can be pressed now."""
        for selector in selectors:
            for b in self.query(selector).results(Button):
                if not b.disabled:
                    return b
        return None

    def check_action(self, action: str, parameters) -> bool | None:
        if action == "forward":  # None: shown, dimmed (False would hide it)
            return True if self._enabled(*self.FORWARD) is not None else None
        return True

    def action_forward(self) -> None:
        self.press(*self.FORWARD)

    def palette(self) -> list[tuple[str, str, object]]:
        """This step's own actions for the command palette: (title, help, callback)."""
        return []

    def press(self, *selectors: str) -> None:
        """Press the first enabled of these buttons, as a click would: nothing while none is."""
        button = self._enabled(*selectors)
        if button is not None:
            button.press()

    def primary_changed(self) -> None:
        """A primary button was enabled or disabled: the footer's Next follows it."""
        self.refresh_bindings()

    def on_mount(self) -> None:
        for selector, title in self.TITLES.items():
            self.query_one(selector).border_title = title
        self.query_one(CommandsPanel).set_class(not self.app.commands_visible, "hidden")
        self.refresh_commands()

    def on_screen_resume(self) -> None:
        self.query_one(CommandsPanel).set_class(not self.app.commands_visible, "hidden")
        self.refresh_commands()

    def refresh_commands(self) -> None:
        self.query_one(CommandsPanel).show_lines(self.app.command_lines())

    def show_error(self, message: str | None) -> None:
        err = self.query_one("#error", Static)
        if message:
            err.update(Text(f"✗ {message}   (Esc: back)", style="bold"))
        err.set_class(not message, "hidden")

    def on_step_failed(self, msg: StepFailed) -> None:
        self.show_error(f"{msg.step}: {msg.error}")

    def action_back(self) -> None:
        if len(self.app.screen_stack) > 2:
            self.app.pop_screen()
