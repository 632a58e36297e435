"""What a VM definition says: its disks in controller order, and its snapshots."""

from __future__ import annotations

from dataclasses import dataclass, field

from vm2c_tui.errors import Vm2cError


@dataclass
class VmDisk:
    path: str  # resolved and checked; for an OVA not yet unpacked, the member's name
    slot: str  # where the definition attaches it: "SATA 0:0", "scsi0:1", "vda", "disk 1"


@dataclass
class Snapshot:
    name: str
    date: str  # as the definition writes it (ISO 8601 where it has one)
    depth: int  # in the snapshot tree: 0 for the first
    current: bool  # the snapshot the VM's current state was made from
    disks: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"name": self.name, "date": self.date or None, "depth": self.depth, "current": self.current,
                "disks": list(self.disks)}


def pick(snaps: list[tuple[Snapshot, object]], name: str, definition) -> object:
    """What the definition records for snapshot NAME (its attachments), or a one-line refusal."""
    found = [what for s, what in snaps if s.name == name]
    if not found:
        names = ", ".join(repr(s.name) for s, _ in snaps) or "none"
        raise Vm2cError(f"{definition}: no snapshot named {name!r} (it has: {names})")
    return found[0]


@dataclass
class Machine:
    kind: str  # disk, disks, vbox, vmx, ovf, ova, libvirt, ssh-disk (copied), ssh-view (read in place)
    definition: str  # the file that defines it (the disk image itself for kind disk)
    name: str
    disks: list[VmDisk]
    snapshots: list[Snapshot] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    state: str = "current"  # or the snapshot's name read instead (--snapshot)

    @property
    def needs_unpack(self) -> bool:
        """Its disks are copied to be read: an OVA's members, a disk image on a machine over SSH."""
        return self.kind in ("ova", "ssh-disk")

    @property
    def disk_snapshot(self) -> str:
        """A lone image's internal snapshot to read (--snapshot on a qcow2), "" for the current state."""
        return self.state if self.kind in ("disk", "ssh-disk") and self.state != "current" else ""

    @property
    def is_vm(self) -> bool:
        return self.kind != "disk"

    def to_json(self) -> dict:
        return {"kind": self.kind, "definition": self.definition, "name": self.name, "state": self.state}

    def disks_json(self) -> list[dict]:
        return [{"id": f"d{i}", "slot": d.slot, "path": d.path} for i, d in enumerate(self.disks, 1)]
