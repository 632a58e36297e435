"""An OVF descriptor: the disks of its (first) virtual system in controller order, each the
file its References section names."""

from __future__ import annotations

from pathlib import Path

from vm2c_tui.errors import Vm2cError
from vm2c_tui.source.vm import xmltext as x

DISK_ITEM = "17"


def disk_files(definition: Path, data: bytes | None = None) -> tuple[str, list[tuple[str, str, str]]]:
    """(VM name, [(slot, href, compression)]) in the order the hardware section attaches them."""
    env = x.parse(definition, data)
    if x.local(env.tag) != "Envelope":
        raise Vm2cError(f"{definition}: not an OVF descriptor (no <Envelope>)")
    files = {x.attr(f, "id"): (x.attr(f, "href"), x.attr(f, "compression")) for refs in x.kids(env, "References")
             for f in x.kids(refs, "File")}
    disks = {x.attr(d, "diskId"): x.attr(d, "fileRef") for sec in x.kids(env, "DiskSection")
             for d in x.kids(sec, "Disk")}
    systems = x.kids(env, "VirtualSystem") or [s for c in x.kids(env, "VirtualSystemCollection")
                                               for s in x.kids(c, "VirtualSystem")]
    name, order = definition.stem, []
    if systems:
        vs = systems[0]
        name = x.text(vs, "Name") or x.attr(vs, "id") or name
        items = [i for hw in x.kids(vs, "VirtualHardwareSection") for i in (*x.kids(hw, "Item"),
                                                                            *x.kids(hw, "StorageItem"))]
        controllers = [x.text(i, "InstanceID") for i in items]
        for i in items:
            if x.text(i, "ResourceType") != DISK_ITEM:
                continue
            res = x.text(i, "HostResource")
            disk_id = res.split("/")[-1]
            parent = x.text(i, "Parent")
            pos = controllers.index(parent) if parent in controllers else len(controllers)
            addr = x.text(i, "AddressOnParent") or "0"
            order.append(((pos, int(addr) if addr.isdigit() else 0), f"disk {len(order) + 1}", disk_id))
    order.sort()
    ids = [d for _, _, d in order] + [d for d in disks if d not in {o[2] for o in order}]
    out = []
    for n, disk_id in enumerate(ids, 1):
        ref = disks.get(disk_id)
        if ref not in files:
            raise Vm2cError(f"{definition}: disk {disk_id!r} names no file in the References section")
        href, comp = files[ref]
        out.append((f"disk {n}", href, comp))
    if not out:
        raise Vm2cError(f"{definition}: the OVF describes no disk")
    return name, out
