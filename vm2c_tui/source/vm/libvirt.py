"""A libvirt domain (virsh dumpxml, a Proxmox-style definition): its file-backed disks in the
order the XML lists them. Host paths (/var/lib/libvirt/images/...) are read only where they lie
in the definition's folder or a --trust-dir, or when the disk was copied beside the XML."""

from __future__ import annotations

from pathlib import Path

from vm2c_tui.errors import Vm2cError
from vm2c_tui.source.vm import xmltext as x
from vm2c_tui.source.vm.model import Machine, VmDisk
from vm2c_tui.source.vm.paths import inside


def parse(definition: Path, snapshot: str | None = None) -> Machine:
    dom = x.parse(definition)
    if x.local(dom.tag) != "domain":
        raise Vm2cError(f"{definition}: not a libvirt domain (no <domain>)")
    if snapshot is not None:
        raise Vm2cError(f"{definition}: libvirt snapshots are not read by name; use qemu-img snapshot -l on the disk")
    vm = Machine("libvirt", str(definition), x.text(dom, "name") or definition.stem, [])
    for devices in x.kids(dom, "devices"):
        for disk in x.kids(devices, "disk"):
            if x.attr(disk, "device", "disk") != "disk":
                continue
            src, target = x.kid(disk, "source"), x.kid(disk, "target")
            slot = x.attr(target, "dev") if target is not None else f"disk {len(vm.disks) + 1}"
            if x.attr(disk, "type", "file") != "file" or src is None or not x.attr(src, "file"):
                vm.warnings.append(f"{slot}: not a file-backed disk (type {x.attr(disk, 'type')!r}); not read")
                continue
            vm.disks.append(VmDisk(inside(definition, x.attr(src, "file"), f"disk ({slot})", fallback_basename=True),
                                   slot))
    if not vm.disks:
        raise Vm2cError(f"{definition}: the domain has no file-backed disk")
    return vm
