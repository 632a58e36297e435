"""Declarative disk layouts: what goes where, before any tool runs."""

from __future__ import annotations

import hashlib
import uuid as uuidlib
from dataclasses import dataclass, field
from pathlib import Path


def stable_uuid(name: str) -> str:
    """Deterministic UUIDs keep fixture contents (and their cache keys) stable."""
    return str(uuidlib.uuid5(uuidlib.NAMESPACE_URL, "vm2c:" + name))


@dataclass
class Fs:
    fstype: str  # ext4 | xfs | btrfs | vfat | swap
    size_mib: int
    name: str
    tree: Path | None = None  # directory copied into the filesystem
    label: str = ""
    subvols: dict[str, Path] | None = None  # btrfs: subvolume name -> tree (Ubuntu's @, @home)

    @property
    def uuid(self) -> str:
        if self.fstype == "vfat":
            return self.volume_id[:4] + "-" + self.volume_id[4:]
        return stable_uuid(self.name)

    @property
    def volume_id(self) -> str:
        return hashlib.sha256(self.name.encode()).hexdigest()[:8].upper()


@dataclass
class Lv:
    name: str
    fs: Fs
    grow_mib: int = 0  # created that much smaller, lvextend-ed after the VG's other LVs: two segments


@dataclass
class Vg:
    name: str
    lvs: list[Lv]


@dataclass
class Part:
    size_mib: int
    kind: str  # linux | efi | lvm | swap | extended
    content: Fs | Vg | None = None
    logical: bool = False


@dataclass
class Disk:
    table: str  # gpt | dos | none
    parts: list[Part] = field(default_factory=list)
    size_mib: int = 0  # 0: sum of the partitions plus room for the tables

    def total_mib(self) -> int:
        if self.size_mib:
            return self.size_mib
        if self.table == "none":
            return self.parts[0].size_mib
        logical = sum(1 for p in self.parts if p.logical)
        return sum(p.size_mib for p in self.parts if p.kind != "extended") + logical + 3
