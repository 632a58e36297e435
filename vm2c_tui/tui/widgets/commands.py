"""The commands panel: the shell commands equivalent to the wizard's steps."""

from __future__ import annotations

from rich.text import Text
from textual.containers import VerticalScroll
from textual.widgets import Static


class CommandsPanel(VerticalScroll):
    """Shown and hidden with `c` on every screen; the same text as `--dry-run`."""

    DEFAULT_CLASSES = "hidden"

    def compose(self):
        yield Static(id="commands-text")

    def show_lines(self, lines: list[str]) -> None:
        self.query_one("#commands-text", Static).update(Text("\n".join(lines)))
