"""Step 2: the cfdisk-style table, LVs beneath their PV, and a preview pane."""

from __future__ import annotations

import os

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import Button, DataTable, Static

from vm2c_tui.errors import Vm2cError
from vm2c_tui.inspect.model import Volume
from vm2c_tui.read import engine
from vm2c_tui.text import COLUMNS, rows, safe
from vm2c_tui.tui.screens.base import StepScreen

# Start, End and Sectors get columns from this width on; narrower, they are in the preview, so
# Label and OS (which partition holds the root?) always show at 80 columns
WIDE = 110
NARROW = ("Device", "Size", "Type", "Filesystem", "Label", "OS")

LVM_NOTE = ("LVM: vm2c reads the volume group metadata itself and reads each linear LV at its byte "
            "offset: no device-mapper, no vgchange, the host's LVM untouched.")


class PartitionsScreen(StepScreen):
    NAME = "partitions"
    TITLES = {"#table": "Partitions and LVM volumes", "#preview": "Highlighted"}
    BINDINGS = [Binding("r", "use_as_root", "Use as root")]

    def palette(self) -> list[tuple[str, str, object]]:
        return [("Use as root", "take the highlighted filesystem as the root, as r", self.action_use_as_root)]

    def compose_body(self) -> ComposeResult:
        yield Static("Inspecting…", id="disk-summary")
        yield DataTable(id="table", cursor_type="row", zebra_stripes=False)
        yield Static(LVM_NOTE, id="lvm-note", classes="hidden")
        with Horizontal(id="lower"):
            yield Static(id="preview")
            with Horizontal(classes="buttons"):
                yield Button("Mount ▸", id="next", variant="primary", disabled=True)

    def on_mount(self) -> None:
        super().on_mount()
        if self.app.state.inspection is None:
            self.inspect()
        else:
            self.fill()

    @work(thread=True, exclusive=True, group="inspect")
    def inspect(self) -> None:
        state = self.app.state
        try:
            status = lambda m: self.app.call_from_thread(self._status, m)  # noqa: E731
            insp = engine.inspect(state.source, state.options.engine, machine=state.machine(status), progress=status)
        except Vm2cError as exc:
            self.app.call_from_thread(self._failed, exc.message)
            return
        state.inspection = insp
        self.app.call_from_thread(self.fill)

    def _status(self, msg: str) -> None:
        self.query_one("#disk-summary", Static).update(Text(msg + "…"))

    def _failed(self, msg: str) -> None:
        self.query_one("#disk-summary", Static).update("")
        self.show_error(msg)

    def fill(self) -> None:
        insp = self.app.state.inspection
        root = self.app.state.options.root or insp.root
        table = self.query_one(DataTable)
        table.clear(columns=True)
        self.columns = self._columns()
        # narrow: one space between columns instead of two, so Label and OS fit in 80
        table.cell_padding = 1 if self.columns == COLUMNS else 0
        gap = "" if self.columns == COLUMNS else " "
        for c in self.columns:
            table.add_column(gap + c, key=c)
        pick = [COLUMNS.index(c) for c in self.columns]
        self.volumes: dict[str, Volume] = {}
        root_row = 0
        for i, (vol, cells) in enumerate(rows(insp, mark_root=False)):
            style = "bold green" if vol.id == root else ""  # the root, as the summary line names it
            table.add_row(*[Text(gap + cells[k], style=style) for k in pick], key=vol.id)
            self.volumes[vol.id] = vol
            if vol.id == root:
                root_row = i
        table.move_cursor(row=root_row)
        summary = Text()
        vm = insp.machine
        if vm is not None and vm.is_vm:  # the VM, and how many of its disks this table covers
            summary.append(f"{safe(vm.name, 40)} ({vm.kind}, {len(vm.disks)} disk{'s' * (len(vm.disks) > 1)})  ",
                           style="bold")
            summary.append(safe(os.path.basename(insp.source), 40))
        else:
            summary.append(safe(insp.source, 60), style="bold")
        summary.append(f"  {insp.display_format}, table {insp.table}, root ")
        summary.append(root or "not found", style="bold green" if root else "bold red")
        for w in insp.warnings:
            summary.append("\n" + safe(w, 200), style="bold red")
        self.query_one("#disk-summary", Static).update(summary)
        self.query_one("#lvm-note").set_class(not any(p.volumes for p in insp.partitions), "hidden")
        self.query_one("#next", Button).disabled = root is None
        self.primary_changed()
        table.focus()  # the work here is choosing in the table
        self.refresh_commands()

    def _columns(self) -> tuple[str, ...]:
        return COLUMNS if self.app.size.width >= WIDE else NARROW

    def on_resize(self) -> None:
        if self.app.state.inspection is not None and getattr(self, "columns", None) not in (None, self._columns()):
            self.fill()

    @on(DataTable.RowHighlighted)
    def highlighted(self, event: DataTable.RowHighlighted) -> None:
        vol = self.volumes.get(event.row_key.value) if hasattr(self, "volumes") else None
        self.query_one("#preview", Static).update(self._preview(vol) if vol else "")

    def _preview(self, vol: Volume) -> Text:
        t = Text()
        t.append(f"{vol.id}  ", style="bold")
        t.append(f"{vol.fstype or 'no filesystem'}  {safe(vol.label, 30)}\n")
        if getattr(vol, "sectors", 0):  # a partition: where it lies, as cfdisk's Start/End/Sectors
            t.append(f"sectors {vol.start}-{vol.end} ({vol.sectors})\n", style="dim")
        if vol.os:
            t.append("OS: ", style="bold")
            t.append(safe(vol.os.pretty_name, 60) + "\n")
        if vol.top:
            t.append("Top: ", style="bold")
            t.append(safe(" ".join(vol.top), 160) + "\n")
        for e in vol.fstab[:5]:
            where = e.target or f"({e.skip})"
            t.append(safe(f"  {e.mountpoint:10} {e.fstype:6} {where}", 60) + "\n")
        if vol.note:
            t.append(safe(vol.note, 120), style="italic")
        return t

    @on(DataTable.RowSelected)
    def selected(self, event: DataTable.RowSelected) -> None:
        self.action_use_as_root()

    def action_use_as_root(self) -> None:
        table = self.query_one(DataTable)
        if table.row_count == 0:
            return
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        vol = self.volumes.get(key)
        if vol is None or vol.fstype not in ("ext2", "ext3", "ext4", "xfs", "btrfs") or not vol.readable:
            self.show_error(f"{key} cannot be the root ({vol.note if vol else 'unknown'})")
            return
        self.show_error(None)
        state = self.app.state
        if state.options.root != key:
            state.choose_root(key)
        self.fill()

    @on(Button.Pressed, "#next")
    def next_step(self) -> None:
        self.app.go("mount")
