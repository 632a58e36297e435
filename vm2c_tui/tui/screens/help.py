"""The help screen: what this step does, what vm2c does behind it, the keys (? or F1)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from vm2c_tui.tui.helptext import help_for


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape", "close", "Close"), Binding("question_mark", "close", show=False),
                Binding("f1", "close", show=False), Binding("q", "close", show=False)]

    def __init__(self, step: str) -> None:
        super().__init__()
        self.step = step

    def compose(self) -> ComposeResult:
        title, body = help_for(self.step)
        box = VerticalScroll(Static(body, markup=False, id="help-body"), id="help")
        box.border_title = title
        box.border_subtitle = "esc closes"
        yield box

    def action_close(self) -> None:
        self.dismiss(None)
