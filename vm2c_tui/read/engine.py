"""Which engine reads the image: the kernel route (loop devices and read-only
mounts, GNU tar; needs root) or the user-space one (reads everything in
Python; needs the optional dissect modules). `auto` takes the kernel route where
it works (root, loop devices, the tools) and the user-space engine otherwise."""

from __future__ import annotations

import os

from vm2c_tui.errors import NeedsRoot, Vm2cError
from vm2c_tui.host.run import which
from vm2c_tui.host.session import Session
from vm2c_tui.inspect.remote import inspect_remote
from vm2c_tui.read import userspace
from vm2c_tui.source.ssh import Remote, is_remote_machine
from vm2c_tui.source.vdi import read_header
from vm2c_tui.source.vdichain import STALE
from vm2c_tui.source.vm.model import Machine
from vm2c_tui.source.vm.resolve import describe, open_machine

ENGINES = ("auto", "kernel", "userspace")


def choose(requested: str | None = None) -> str:
    req = requested or "auto"
    if req not in ENGINES:
        raise Vm2cError(f"unknown engine '{req}' (choose from {', '.join(ENGINES)})")
    if req == "userspace":
        userspace.require()
        return req
    if req == "kernel":
        return req
    if kernel_route_available() or not userspace.available():
        return "kernel"
    return "userspace"


def kernel_route_available() -> bool:
    """Root, loop devices and the tools the kernel route runs (a container may lack them)."""
    return (os.geteuid() == 0 and os.path.exists("/dev/loop-control")
            and all(which(t) for t in ("losetup", "mount", "umount", "tar")))


def require_kernel_root(engine: str, what: str) -> None:
    if engine == "kernel" and os.geteuid() != 0:
        hint = ("; without root, use the user-space engine (--engine userspace)" if userspace.available()
                else "; without root, install the user-space engine: pip install 'vm2c-tui[userspace]'")
        raise NeedsRoot(f"vm2c {what} needs root on the kernel route: it attaches loop devices and mounts the "
                        f"guest's filesystems read-only{hint}")


def inspect(source, engine: str | None = None, *, method: str | None = None, progress=None, look_inside=True,
            joined=None, machine: Machine | None = None, snapshot: str | None = None, sudo: bool = False,
            note=None):
    """SOURCE: a disk image, or a VM (definition, OVA, folder: source/vm) whose disk is read;
    MACHINE: SOURCE already resolved by a caller that keeps its unpacked files (a conversion)."""
    if is_remote_machine(source):  # a running machine over SSH: its mount table, not a disk's
        return inspect_remote(Remote.parse(source, sudo))
    if machine is None:
        machine = describe(source, snapshot)
        if machine.needs_unpack:  # its disks, copied here for as long as the inspection reads them
            with Session("unpack", str(source)) as session:
                return _inspect_machine(open_machine(source, session, snapshot, note), engine, method, progress,
                                        look_inside, joined)
    return _inspect_machine(machine, engine, method, progress, look_inside, joined)


def _inspect_machine(machine: Machine, engine, method, progress, look_inside, joined):
    paths = [d.path for d in machine.disks]
    insp = inspect_disk(paths if len(paths) > 1 else paths[0], engine, method=method, progress=progress,
                        look_inside=look_inside, joined=joined, snapshot=machine.disk_snapshot)
    insp.machine = machine
    insp.warnings[:0] = machine.warnings
    if machine.state != "current":
        insp.warnings = [w for w in insp.warnings if STALE not in w]
        insp.warnings.append(f"reading snapshot {machine.state!r}, not the VM's current state (--snapshot)")
    return insp


def inspect_disk(source, engine: str | None = None, *, method: str | None = None, progress=None, look_inside=True,
                 joined=None, snapshot: str = ""):
    """With `auto`, an image holding an LV in pieces (grown with lvextend), which the kernel
    route can only read through a joined copy (joincopy.py), is read in user space instead,
    in place, when that engine is installed; the inspection says so, and its raw_method
    ("userspace") tells the conversion. JOINED: inspect_image's."""
    if choose(engine) == "userspace":
        from vm2c_tui.read.userspace.inspect import inspect_userspace

        return inspect_userspace(source, look_inside=look_inside, progress=progress, snapshot=snapshot)
    from vm2c_tui.read.kernel.inspect import inspect_image

    may_switch = (engine or "auto") == "auto" and userspace.available() and not snapshot
    if may_switch and any(_vdi_chain(p) for p in (source if isinstance(source, list) else [source])):
        from vm2c_tui.read.userspace.inspect import inspect_userspace

        insp = inspect_userspace(source, look_inside=look_inside, progress=progress)  # as fast, no copy (results.md)
        insp.warnings.append("a differencing VDI (a snapshot's changes over its parents): read in user space, in "
                             "place (the kernel route, which qemu cannot serve, would first copy the chain's "
                             "current state to a temporary raw file)")
        return insp
    insp = inspect_image(source, look_inside=look_inside, method=method, progress=progress,
                         join_pieces=not may_switch, joined=joined, snapshot=snapshot)
    pieces = [v.id for v in insp.in_pieces()]
    if not may_switch or not pieces:
        return insp
    from vm2c_tui.read.userspace.inspect import inspect_userspace  # only here: ~12 ms of imports the kernel route skips

    insp = inspect_userspace(source, look_inside=look_inside, progress=progress)
    insp.warnings.append(f"{', '.join(pieces)}: in pieces (grown with lvextend, or across disks): read in user space, "
                         f"in place (the kernel route, without device-mapper, would copy them joined first)")
    return insp


def _vdi_chain(path) -> bool:
    hdr = read_header(str(path))
    return hdr is not None and hdr.differencing


def resolved(requested: str | None, insp) -> str:
    """The engine a conversion uses once its image is inspected (see inspect())."""
    if (requested or "auto") == "auto" and insp is not None and insp.raw_method == "userspace":
        return "userspace"
    return choose(requested)
