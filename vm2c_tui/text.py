"""Plain-text rendering shared by the CLI and the wizard (no Textual here)."""

from __future__ import annotations

import unicodedata

from vm2c_tui.inspect.model import Inspection, Volume


def human(n: int | float | None) -> str:
    """cfdisk-style binary sizes: 512B, 33M, 1.5G."""
    if n is None:
        return "-"
    n = float(n)
    for unit in ("B", "K", "M", "G", "T", "P"):
        if abs(n) < 1024 or unit == "P":
            if unit == "B":
                return f"{int(n)}B"
            return f"{n:.1f}{unit}".replace(".0" + unit, unit)
        n /= 1024
    return f"{n}"


def safe(s: str | None, limit: int = 200) -> str:
    """Guest text for a terminal: control and escape characters made visible."""
    if not s:
        return ""
    out = []
    for ch in s[:limit]:
        if ch.isprintable() and unicodedata.category(ch) not in ("Cc", "Cf", "Zl", "Zp"):
            out.append(ch)
        else:
            out.append(ch.encode("unicode_escape").decode("ascii"))
    return "".join(out) + ("…" if len(s) > limit else "")


COLUMNS = ("Device", "Start", "End", "Sectors", "Size", "Type", "Filesystem", "Label", "OS")


def rows(insp: Inspection, mark_root: bool = True) -> list[tuple[Volume, tuple[str, ...]]]:
    """One row per partition, then its LVs indented beneath, as cfdisk would list them; MARK_ROOT:
    the root's OS says [root] (the wizard shows it by colour instead, and keeps the width)."""
    out = []
    mark = "  [root]" if mark_root else ""
    for p in insp.partitions:
        os_name = (p.os.pretty_name if p.os else "") + (mark if p.root else "")
        out.append((p, (p.id, str(p.start), str(p.end), str(p.sectors), human(p.size), p.type,
                        p.fstype or "-", safe(p.label, 24), safe(os_name, 40))))
        for v in p.volumes:
            os_name = (v.os.pretty_name if v.os else "") + (mark if v.root else "")
            out.append((v, (" └ " + safe(v.id, 60), "", "", "", human(v.size), "LVM LV",
                            v.fstype or "-", safe(v.label, 24), safe(os_name, 40))))
    return out


def render_table(insp: Inspection) -> str:
    body = [r for _, r in rows(insp)]
    table = [COLUMNS, *body]
    widths = [max(len(r[i]) for r in table) for i in range(len(COLUMNS))]
    right = {1, 2, 3, 4}
    lines = []
    for r in table:
        cells = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def machine_lines(m) -> list[str]:
    """A VM's name, definition, disks and snapshot tree (source.vm.model.Machine), for a face."""
    if m is None or not m.is_vm:
        return []
    out = [f"VM: {safe(m.name, 60)} ({m.kind}: {safe(m.definition)}), "
           + ("current state" if m.state == "current" else f"snapshot {safe(m.state, 60)}")]
    for i, d in enumerate(m.disks, 1):
        out.append(f"  d{i} {safe(d.slot, 20)}: {safe(d.path)}")
    for s in m.snapshots:
        mark = "  <- current state made from it" if s.current else ""
        out.append(f"  snapshot {'  ' * s.depth}{safe(s.name, 60)}  {safe(s.date, 30)}{mark}")
    return out


def render_inspection(insp: Inspection) -> str:
    several = insp.machine is not None and len(insp.machine.disks) > 1
    head = [
        *machine_lines(insp.machine),
        f"Disks: {len(insp.machine.disks)}, in one table below (ids d1/, d2/ ...)" if several else
        f"Disk: {safe(insp.source)}",
        f"Format: {insp.display_format}{' (the first disk)' if several else ''}, virtual size "
        f"{human(insp.virtual_size)} ({insp.virtual_size} bytes{', all disks' if several else ''}), "
        f"{human(insp.disk_size)} on disk",
        f"Label: {insp.table}    Read through: {insp.raw_method} ({insp.raw_why})",
    ]
    if insp.backing_chain:
        head.append("Backing chain: " + " -> ".join(safe(b) for b in insp.backing_chain))
    out = "\n".join(head) + "\n\n" + render_table(insp) + "\n"
    notes = [f"  {v.id}: {v.note}" for v in insp.filesystems() if v.note]
    if any(p.volumes for p in insp.partitions):
        notes.insert(0, "  LVM: vm2c reads the volume group's metadata itself and reads each linear LV "
                        "at its byte offset (no device-mapper, the host's LVM is not touched).")
    if notes:
        out += "\nNotes:\n" + "\n".join(notes) + "\n"
    root = insp.root_volume
    if root:
        sub = f", btrfs subvolume {safe(root.subvol)}" if root.subvol else ""
        out += f"\nRoot filesystem: {root.id}{sub} ({safe(root.os.pretty_name) if root.os else 'unknown OS'})\n"
        for e in root.fstab:
            where = f"-> {e.target}" if e.target else f"skipped: {e.skip}"
            out += f"  fstab {safe(e.spec, 60)} {safe(e.mountpoint, 40)} {e.fstype}  {where}\n"
    elif insp.looked_inside:
        out += "\nNo root filesystem found (no os-release, fstab or init in any Linux filesystem).\n"
    for w in insp.warnings:
        out += f"WARNING: {safe(w, 400)}\n"
    return out


def render_remote(insp) -> str:
    """A machine over SSH (inspect/remote.py): what the Partitions step shows for a disk."""
    out = [f"Machine: {safe(insp.source)}  {safe(insp.os.pretty_name) if insp.os else 'unknown OS'}",
           f"tar: {safe(insp.tar, 80)}", "", f"{'Mount point':<24} {'Type':<10} {'Size':>6} {'Used':>6}  Device / why not"]
    for m in insp.mounts:
        why = safe(m.device, 40) if m.archived else f"skipped: {m.why}"
        mark = "*" if m.archived else " "
        out.append(f"{mark}{safe(m.mountpoint, 23):<23} {m.fstype:<10} {human(m.size):>6} {human(m.used):>6}  {why}")
    out.append("")
    out.append(f"* archived, each on its own (tar --one-file-system): {human(sum(m.used for m in insp.archived))} used")
    for w in insp.warnings:
        out.append(f"WARNING: {safe(w, 400)}")
    return "\n".join(out) + "\n"


def render_services(found) -> str:
    """What the guest runs (inspect/services): its init, the services it starts, ports, data."""
    out = [f"Init: {found.init}" + (f" ({safe(found.init_path, 60)})" if found.init_path else ""), ""]
    if found.services:
        out.append(f"{'Service':<28} {'Ports':<12} {'User':<10} Runs")
    for s in found.services:
        runs = s.exec_start[-1] if s.exec_start else s.unit
        ports = ",".join(map(str, s.ports)) or "-"
        out.append(f"{safe(s.name, 27):<28} {ports:<12} {safe(s.user or 'root', 10):<10} {safe(runs, 70)}")
    if found.data_dirs:
        out += ["", "Data that should outlive a container (a volume each):"]
        out += [f"  {safe(p, 40):<40} {human(b):>7}  {safe(why, 40)}" for p, b, why in found.data_dirs]
    out += ["", "Ways to run it: " + ", ".join(found.run_modes)]
    return "\n".join(out) + "\n"
