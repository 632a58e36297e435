"""Typed results that cross from the services to the faces."""

from __future__ import annotations

from dataclasses import dataclass, field

from vm2c_tui.inspect.guestinfo import FstabEntry, OsInfo


@dataclass
class Volume:
    """A filesystem (or swap, LUKS, PV...) at a contiguous byte range of the raw disk."""

    id: str
    size: int
    offset: int = 0
    fstype: str = ""
    label: str = ""
    uuid: str = ""
    partuuid: str = ""
    os: OsInfo | None = None
    root: bool = False
    fstab: list[FstabEntry] = field(default_factory=list)
    top: list[str] = field(default_factory=list)
    shells: list[str] = field(default_factory=list)
    score: int = 0
    subvol: str = ""  # btrfs: the subvolume holding the root (Ubuntu's @), "" for the default
    note: str = ""  # why it is listed but not read
    readable: bool = True  # one contiguous range (LVs can span several)
    extents: list[tuple[int, int]] = field(default_factory=list)  # an LV in pieces: (offset, length) each
    disk: int = 0  # which of the VM's disks holds it (offsets are of all disks' one space: source/diskset.py)

    def volume_json(self) -> dict:
        return {"id": self.id, "size": self.size, "fstype": self.fstype or None, "label": self.label or None,
                "uuid": self.uuid or None, "os": self.os.to_json() if self.os else None, "root": self.root}


@dataclass
class Partition(Volume):
    number: int = 0
    start: int = 0
    sectors: int = 0
    type: str = ""
    type_code: str = ""
    volumes: list[Volume] = field(default_factory=list)

    @property
    def end(self) -> int:
        return self.start + self.sectors - 1 if self.sectors else 0

    def to_json(self) -> dict:
        d = {"id": self.id, "number": self.number, "start": self.start, "end": self.end,
             "sectors": self.sectors, "size": self.size, "type": self.type}
        v = self.volume_json()
        del v["id"], v["size"]
        d.update(v)
        d["volumes"] = [x.volume_json() for x in self.volumes]
        return d


@dataclass
class Inspection:
    source: str
    format: str  # the format's own name: raw qcow2 vdi vmdk vhd vhdx
    subformat: str  # its variant (streamOptimized, dynamic, fixed ...) or ""
    virtual_size: int
    disk_size: int
    table: str
    partitions: list[Partition]
    root: str | None
    warnings: list[str]
    raw_method: str = ""
    raw_why: str = ""
    backing_chain: list[str] = field(default_factory=list)
    looked_inside: bool = True
    internal_snapshots: list[dict] = field(default_factory=list)  # a qcow2's, from qemu-img info
    machine: object = None  # source.vm.model.Machine: the VM (or lone disk) this disk belongs to

    def filesystems(self) -> list[Volume]:
        out: list[Volume] = []
        for p in self.partitions:
            out.append(p)
            out.extend(p.volumes)
        return out

    def in_pieces(self) -> list[Volume]:
        """LVs in pieces (grown with lvextend): user space reads them in place, the kernel
        route through a joined copy (joincopy.py)."""
        return [v for v in self.filesystems() if v.extents]

    def find(self, fs_id: str) -> Volume | None:
        for v in self.filesystems():
            if v.id == fs_id:
                return v
        return None

    @property
    def root_volume(self) -> Volume | None:
        return self.find(self.root) if self.root else None

    @property
    def display_format(self) -> str:
        return f"{self.format} ({self.subformat})" if self.subformat else self.format

    def to_json(self) -> dict:
        return {"source": self.source, "format": self.format, "subformat": self.subformat or None,
                "virtual_size": self.virtual_size,
                "disk_size": self.disk_size, "table": self.table,
                "backing_chain": list(self.backing_chain),
                "partitions": [p.to_json() for p in self.partitions], "root": self.root,
                "warnings": list(self.warnings), **self._machine_json()}

    def _machine_json(self) -> dict:
        m = self.machine
        if m is None:
            return {"machine": None, "disks": [{"id": "d1", "slot": "disk", "path": self.source}],
                    "snapshots": list(self.internal_snapshots)}
        return {"machine": m.to_json() if m.is_vm else None, "disks": m.disks_json(),
                "snapshots": [s.to_json() for s in m.snapshots] if m.is_vm else list(self.internal_snapshots)}
