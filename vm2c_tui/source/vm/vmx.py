"""A VMware VM (.vmx, and its .vmsd snapshot list): the disks it attaches now, each the newest
delta of its chain (qemu follows parentFileNameHint down, source/imagerefs.py checks each name)."""

from __future__ import annotations

import re
from pathlib import Path

from vm2c_tui.errors import Vm2cError
from vm2c_tui.source.vm.model import Machine, Snapshot, VmDisk, pick
from vm2c_tui.source.vm.paths import inside

LINE = re.compile(r'^\s*([A-Za-z0-9_:.]+)\s*=\s*"(.*)"\s*$')
SLOT = re.compile(r"^(ide|sata|scsi|nvme)(\d+):(\d+)\.filename$")
BUS_ORDER = {"ide": 0, "sata": 1, "scsi": 2, "nvme": 3}
MAX_TEXT = 4 << 20


def read_pairs(path: Path) -> dict[str, str]:
    with open(path, "rb") as f:
        data = f.read(MAX_TEXT)
    out = {}
    for line in data.decode("utf-8", "replace").splitlines():
        m = LINE.match(line)
        if m:
            out[m.group(1).lower()] = m.group(2)
    return out


def looks_like_vmx(head: bytes) -> bool:
    """A file's first bytes are a VMware VM's configuration."""
    head = head.lower()
    return b"virtualhw.version" in head or b'config.version = "8"' in head


def _disks(vmx: dict[str, str]) -> list[tuple[tuple, str, str]]:
    out = []
    for key, value in vmx.items():
        m = SLOT.match(key)
        if not m:
            continue
        slot = f"{m.group(1)}{m.group(2)}:{m.group(3)}"
        dev = vmx.get(f"{slot}.devicetype", "disk").lower()
        if vmx.get(f"{slot}.present", "TRUE").upper() == "FALSE" or "cdrom" in dev or not value.lower().endswith(".vmdk"):
            continue
        out.append(((BUS_ORDER[m.group(1)], int(m.group(2)), int(m.group(3))), slot, value))
    return sorted(out)


def _snapshots(definition: Path) -> list[tuple[Snapshot, dict[str, str]]]:
    vmsd = definition.with_suffix(".vmsd")
    if not vmsd.is_file():
        return []
    pairs = read_pairs(vmsd)
    current = pairs.get("snapshot.current", "")
    out = []
    for n in range(int(pairs.get("snapshot.numsnapshots", "0") or 0)):
        p = f"snapshot{n}."
        disks = {pairs.get(f"{p}disk{d}.node", ""): pairs.get(f"{p}disk{d}.filename", "")
                 for d in range(int(pairs.get(f"{p}numdisks", "0") or 0))}
        snap = Snapshot(pairs.get(f"{p}displayname", f"snapshot {n}"), pairs.get(f"{p}createtimehigh", ""), 0,
                        pairs.get(f"{p}uid", "") == current, [v for v in disks.values() if v])
        out.append((snap, disks))
    return out


def parse(definition: Path, snapshot: str | None = None) -> Machine:
    vmx = read_pairs(definition)
    slots = _disks(vmx)
    if not slots:
        raise Vm2cError(f"{definition}: the VMware VM attaches no disk (.vmdk)")
    snaps = _snapshots(definition)
    vm = Machine("vmx", str(definition), vmx.get("displayname", definition.stem), [], [s for s, _ in snaps])
    chosen = None
    if snapshot is not None:
        chosen, vm.state = pick(snaps, snapshot, definition), snapshot
    for _, slot, name in slots:
        if chosen is not None:
            name = chosen.get(slot, name)
        vm.disks.append(VmDisk(inside(definition, name, f"disk ({slot})"), slot))
    return vm
