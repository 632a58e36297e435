"""A VirtualBox VM (.vbox): the media registry (image uuid -> file), the disks attached now
(or at a snapshot), the snapshot tree."""

from __future__ import annotations

from pathlib import Path

from vm2c_tui.errors import Vm2cError
from vm2c_tui.source.vm import xmltext as x
from vm2c_tui.source.vm.model import Machine, Snapshot, VmDisk, pick
from vm2c_tui.source.vm.paths import inside


def _registry(machine, definition: Path) -> dict[str, str]:
    """HardDisk uuid -> location as written (children nest inside their parents)."""
    out: dict[str, str] = {}
    todo = [hd for reg in x.kids(machine, "MediaRegistry") for hds in x.kids(reg, "HardDisks")
            for hd in x.kids(hds, "HardDisk")]
    while todo:
        hd = todo.pop()
        out[x.attr(hd, "uuid").lower()] = x.attr(hd, "location")
        todo.extend(x.kids(hd, "HardDisk"))
    return out


def _attached(state) -> list[tuple[str, str]]:
    """(slot, image uuid) of the hard disks a Machine or Snapshot element attaches, in
    controller order (StorageControllers sit in Hardware in newer files, beside it in older)."""
    holders = [state, *x.kids(state, "Hardware")]
    out = []
    for h in holders:
        for scs in x.kids(h, "StorageControllers"):
            for sc in x.kids(scs, "StorageController"):
                devs = [d for d in x.kids(sc, "AttachedDevice") if x.attr(d, "type") == "HardDisk"]
                devs.sort(key=lambda d: (int(x.attr(d, "port", "0") or 0), int(x.attr(d, "device", "0") or 0)))
                for d in devs:
                    img = x.kid(d, "Image")
                    if img is not None:
                        out.append((f"{x.attr(sc, 'name')} {x.attr(d, 'port', '0')}:{x.attr(d, 'device', '0')}",
                                    x.attr(img, "uuid").lower()))
    return out


def _snapshots(machine, current: str) -> list[tuple[Snapshot, list[tuple[str, str]]]]:
    out = []
    todo = [(s, 0) for s in reversed(x.kids(machine, "Snapshot"))]
    while todo:
        s, depth = todo.pop()
        attached = _attached(s)
        snap = Snapshot(x.attr(s, "name"), x.attr(s, "timeStamp"), depth, x.attr(s, "uuid").lower() == current)
        out.append((snap, attached))
        for group in x.kids(s, "Snapshots"):
            todo.extend((c, depth + 1) for c in reversed(x.kids(group, "Snapshot")))
    return out


def parse(definition: Path, snapshot: str | None = None) -> Machine:
    root = x.parse(definition)
    machine = x.kid(root, "Machine")
    if x.local(root.tag) != "VirtualBox" or machine is None:
        raise Vm2cError(f"{definition}: not a VirtualBox machine definition (no <Machine>)")
    registry = _registry(machine, definition)
    snaps = _snapshots(machine, x.attr(machine, "currentSnapshot").lower())

    def disks_of(attached) -> list[VmDisk]:
        out = []
        for slot, uid in attached:
            if uid not in registry:
                raise Vm2cError(f"{definition}: {slot} attaches image {uid}, which its media registry does not list")
            out.append(VmDisk(inside(definition, registry[uid], f"disk ({slot})"), slot))
        return out

    for snap, attached in snaps:
        snap.disks = [registry.get(uid, uid) for _, uid in attached]
    vm = Machine("vbox", str(definition), x.attr(machine, "name") or definition.stem, [],
                 [s for s, _ in snaps])
    if snapshot is None:
        vm.disks = disks_of(_attached(machine))
    else:
        vm.disks, vm.state = disks_of(pick(snaps, snapshot, definition)), snapshot
    if not vm.disks:
        raise Vm2cError(f"{definition}: the VM has no hard disk attached")
    return vm
