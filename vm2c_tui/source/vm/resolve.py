"""From what the operator named (a disk image, a definition, an OVA, a VM folder) to a Machine:
its kind by content, never by name, and its disks' files."""

from __future__ import annotations

import os
from pathlib import Path

from vm2c_tui.errors import Vm2cError
from vm2c_tui.source.fetch import fetch
from vm2c_tui.source.remoteview import open_view
from vm2c_tui.source.ssh import Remote, is_remote
from vm2c_tui.source.vm import libvirt as virt
from vm2c_tui.source.vm import ova, vbox, vmx
from vm2c_tui.source.vm.model import Machine, VmDisk

PREFERENCE = ("vbox", "vmx", "ovf", "libvirt", "ova")
MAX_LISTED = 256


def kind_of(path: Path) -> str:
    """vbox, vmx, ovf, libvirt or ova by content; 'disk' for anything else (a disk image).
    One read of the file's start serves every test (the wizard asks this of each file it lists)."""
    try:
        with open(path, "rb") as f:
            head = f.read(8192)
    except OSError:
        return "disk"
    if ova.is_ova(head):
        return "ova"
    if vmx.looks_like_vmx(head):
        return "vmx"
    if not head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<"):
        return "disk"
    for marker, kind in ((b"<VirtualBox", "vbox"), (b"Envelope", "ovf"), (b"<domain", "libvirt")):
        if marker in head[:4096]:
            return kind
    return "disk"


def definition_in(folder: Path) -> Path | None:
    """The VM definition a folder holds (a VirtualBox or VMware VM folder, an unpacked OVF)."""
    found: dict[str, list[Path]] = {}
    try:
        names = sorted(os.listdir(folder))[:MAX_LISTED]
    except OSError:
        return None
    for name in names:
        p = folder / name
        if name.startswith(".") or not p.is_file() or p.stat().st_size > 16 << 20 and not name.endswith(".ova"):
            continue
        kind = kind_of(p)
        if kind != "disk":
            found.setdefault(kind, []).append(p)
    for kind in PREFERENCE:
        if kind in found:
            if len(found[kind]) > 1:
                raise Vm2cError(f"{folder}: holds {len(found[kind])} {kind} definitions "
                                f"({', '.join(p.name for p in found[kind][:4])}); name one")
            return found[kind][0]
    return None


def describe(path: str | os.PathLike | list, snapshot: str | None = None, unpack_to: Path | None = None,
             note=None) -> Machine:
    """The Machine PATH is (a list: one machine's disk images, in order). An OVA's disks are
    member names unless UNPACK_TO (a private directory) is given, where they are copied to be read."""
    if isinstance(path, list) and len(path) > 1:
        return _several(path, snapshot)
    path = path[0] if isinstance(path, list) else path
    if is_remote(str(path)):  # a disk image on a machine over SSH: copied to be read
        remote = Remote.parse(str(path))
        where = fetch(remote, unpack_to, note or (lambda msg: None)) if unpack_to else remote.url
        return Machine("ssh-disk", remote.url, os.path.basename(remote.path), [VmDisk(where, "disk")],
                       state=snapshot or "current")
    path = Path(os.path.abspath(path))
    if path.is_dir():
        found = definition_in(path)
        if found is None:
            raise Vm2cError(f"{path}: is a directory, not a disk image, and holds no VM definition "
                            f"(.vbox, .vmx, .ovf, .ova, libvirt XML)")
        path = found
    kind = kind_of(path)
    if kind == "disk":
        # a snapshot of a lone image is one of its internal (qcow2) snapshots: checked by identify
        return Machine("disk", str(path), path.name, [VmDisk(str(path), "disk")], state=snapshot or "current")
    if kind == "ova":
        return _ova(path, snapshot, unpack_to)
    if kind == "ovf":
        return _ovf(path, snapshot)
    parser = {"vbox": vbox.parse, "vmx": vmx.parse, "libvirt": virt.parse}[kind]
    return parser(path, snapshot)


def _several(paths: list, snapshot: str | None) -> Machine:
    full = [Path(os.path.abspath(p)) for p in paths]
    for p in full:
        if p.is_dir() or kind_of(p) != "disk":
            raise Vm2cError(f"{p}: is a VM (or a folder); several sources must all be disk images of one machine")
    if snapshot is not None:
        raise Vm2cError("--snapshot names a snapshot of a VM definition; these are disk images")
    return Machine("disks", str(full[0]), f"{len(full)} disks", [VmDisk(str(p), f"disk {i}") for i, p in
                                                                 enumerate(full, 1)])


def _ova(path: Path, snapshot: str | None, unpack_to: Path | None) -> Machine:
    if snapshot is not None:
        raise Vm2cError(f"{path}: an OVA holds no snapshots")
    name, disks = ova.disks(path)
    vm = Machine("ova", str(path), name, [])
    for slot, member, comp in disks:
        where = ova.unpack(path, member, comp, unpack_to) if unpack_to else member.name
        vm.disks.append(VmDisk(where, slot))
    return vm


def _ovf(path: Path, snapshot: str | None) -> Machine:
    from vm2c_tui.source.vm.ovf import disk_files
    from vm2c_tui.source.vm.paths import inside

    if snapshot is not None:
        raise Vm2cError(f"{path}: an OVF holds no snapshots")
    name, files = disk_files(path)
    vm = Machine("ovf", str(path), name, [])
    for slot, href, comp in files:
        if comp:
            raise Vm2cError(f"{path}: {href} is compressed ({comp}); unpack it first")
        vm.disks.append(VmDisk(inside(path, href, f"disk ({slot})"), slot))
    return vm


def open_machine(path: str | os.PathLike, session, snapshot: str | None = None, note=None) -> Machine:
    """describe(), an OVA's disks unpacked into a private directory of SESSION (removed with it);
    a disk image over SSH read in place where the remote serves it (remoteview.py), else copied
    (NOTE(text): how the copy goes, once a second)."""
    vm = describe(path, snapshot)
    notes: list[str] = []
    if vm.kind == "ssh-disk" and snapshot is None:  # qemu-nbd there would need -l: copied, read here
        where = open_view(Remote.parse(vm.definition), session, notes.append)
        if where is not None:
            return Machine("ssh-view", vm.definition, vm.name, [VmDisk(where, "disk")], warnings=notes)
    if vm.needs_unpack:
        vm = describe(path, snapshot, unpack_to=session.tempdir("ova" if vm.kind == "ova" else "fetch"), note=note)
    vm.warnings += notes
    return vm
