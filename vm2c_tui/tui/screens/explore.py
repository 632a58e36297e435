"""The Mount step's disk-usage explorer, like ncdu: the assembled tree's biggest entries, sized
in a worker from the mounted tree or the user-space readers. Enter goes into a directory,
backspace goes up, x leaves the highlighted entry out (an --exclude rule, shown in the commands
panel and in the archive) or takes it back in."""

from __future__ import annotations

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from vm2c_tui.text import human, safe


class Sized(Message):
    def __init__(self, path: str, entries: list[tuple[str, int, bool]]) -> None:
        super().__init__()
        self.path = path
        self.entries = entries


def rule_for(path: str) -> str:
    """The --exclude rule that leaves out exactly guest PATH: anchored at the tree's root (tar
    names members ./PATH), its wildcard characters taken literally."""
    literal = "".join(f"[{c}]" if c in "*?[" else c for c in path)
    return "." + literal


class ExploreScreen(Screen):
    BINDINGS = [Binding("escape", "close", "Done"), Binding("backspace", "up", "Up"),
                Binding("x", "toggle", "Leave out / keep")]

    def __init__(self, tree) -> None:
        super().__init__()
        self.guest = tree
        self.path = "/"
        self.entries: list[tuple[str, int, bool]] = []

    def compose(self) -> ComposeResult:
        yield Static(id="explore-where")
        yield DataTable(id="sizes", cursor_type="row")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.border_title = "Biggest first"
        table.add_column("Size", key="size")
        table.add_column("Name", key="name")
        self.load("/")

    @work(thread=True, exclusive=True, group="du")
    def load(self, path: str) -> None:
        self.app.call_from_thread(self._sizing, path)  # the DOM is the main thread's to read
        self.post_message(Sized(path, self.guest.sizes(path)))

    def _sizing(self, path: str) -> None:
        self.query_one("#explore-where", Static).update(f"sizing {safe(path, 70)}…")

    @on(Sized)
    def sized(self, msg: Sized) -> None:
        same = msg.path == self.path
        self.path, self.entries = msg.path, msg.entries
        total = sum(size for _, size, _ in msg.entries)
        self.query_one("#explore-where", Static).update(Text(f"{safe(msg.path, 60)}  {human(total)}", style="bold"))
        self.fill(keep_row=same)  # a directory just entered starts at its biggest entry

    def _child(self, name: str) -> str:
        return self.path.rstrip("/") + "/" + name

    def fill(self, keep_row: bool = True) -> None:
        table = self.query_one(DataTable)
        row = table.cursor_row if keep_row else 0
        table.clear()
        excludes = self.app.state.options.excludes
        for name, size, is_dir in self.entries:
            out = rule_for(self._child(name)) in excludes
            label = safe(name, 60) + ("/" if is_dir else "") + ("   left out" if out else "")
            table.add_row(Text(human(size), style="dim" if out else ""),
                          Text(label, style="strike dim" if out else ("bold" if is_dir else "")), key=name)
        if self.entries:
            table.move_cursor(row=min(row, len(self.entries) - 1))
        table.focus()

    def _highlighted(self):
        table = self.query_one(DataTable)
        if not self.entries or table.cursor_row >= len(self.entries):
            return None
        return self.entries[table.cursor_row]

    @on(DataTable.RowSelected)
    def into(self, event: DataTable.RowSelected) -> None:
        entry = self._highlighted()
        if entry is not None and entry[2]:
            self.load(self._child(entry[0]))

    def action_up(self) -> None:
        if self.path != "/":
            self.load(self.path.rstrip("/").rpartition("/")[0] or "/")

    def action_toggle(self) -> None:
        entry = self._highlighted()
        if entry is None:
            return
        rule = rule_for(self._child(entry[0]))
        excludes, sizes = self.app.state.options.excludes, self.app.state.exclude_sizes
        if rule in excludes:
            excludes.remove(rule)
            sizes.pop(rule, None)
        else:
            excludes.append(rule)
            sizes[rule] = entry[1]
        self.fill()

    def action_close(self) -> None:
        self.dismiss(True)
