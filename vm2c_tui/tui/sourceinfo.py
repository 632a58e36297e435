"""The Source step's description of what was picked: a disk image's format and sizes, or a
VM's disks and snapshot tree (which snapshot the current state was made from)."""

from __future__ import annotations

from rich.text import Text

from vm2c_tui.text import human, safe


def _row(out: Text, label: str, value: str, style: str = "") -> None:
    out.append(f"{label:<11}", style="bold")
    out.append(value + "\n", style=style)


def describe_source(vm, info) -> Text:
    out = Text()
    if vm.is_vm:
        _row(out, "VM", f"{safe(vm.name, 60)} ({vm.kind})")
        _row(out, "Defined in", safe(vm.definition))
        for i, d in enumerate(vm.disks, 1):
            _row(out, f"Disk d{i}", f"{safe(d.slot, 20)}: {safe(d.path)}")
        for s in vm.snapshots:
            mark = "  ← current state made from it" if s.current else ""
            _row(out, "Snapshot", f"{'  ' * s.depth}{safe(s.name, 50)}  {safe(s.date, 25)}{mark}")
        if info is None:
            return out
    _row(out, "File", safe(str(info.path)))
    _row(out, "Format", info.display_format)
    _row(out, "Virtual", f"{human(info.virtual_size)} ({info.virtual_size} bytes)")
    _row(out, "On disk", human(info.disk_size))
    for b in info.backing_chain:
        _row(out, "Backing", safe(b))
    return out


def describe_remote(insp) -> Text:
    """A machine over SSH: its OS and which of its filesystems are archived (and why not the rest)."""
    out = Text()
    _row(out, "Machine", safe(insp.source))
    _row(out, "OS", safe(insp.os.pretty_name, 60) if insp.os else "unknown")
    for m in insp.mounts:
        if m.archived:
            _row(out, "Archived", f"{safe(m.mountpoint, 30)}  {m.fstype}  {human(m.used)} used", style="green")
    skipped = [m for m in insp.mounts if not m.archived]
    if skipped:
        _row(out, "Skipped", f"{len(skipped)} mounts (proc, tmpfs, network ...): `vm2c inspect` lists why")
    return out
