"""Which engine reads the image: the kernel route (loop devices and read-only
mounts, GNU tar; needs root) or the user-space one (reads everything in
Python; needs the optional dissect modules). `auto` takes the kernel route where
it works (root, loop devices, the tools) and the user-space engine otherwise."""

from __future__ import annotations

import os

from vm2c_tui.errors import DamagedImage, NeedsRoot, Vm2cError
from vm2c_tui.host.run import which
from vm2c_tui.read import userspace

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
            joined=None):
    """With `auto` and the user-space engine installed, the disk is inspected in user space,
    which reads a table and looks inside every filesystem in a fraction of a second where the
    kernel route starts a raw view and mounts each one (#21: 0.2-0.3 s against about 2 s for
    an 800 MB qcow2, vdi or vmdk); the same Inspection (tested equal). The kernel route still
    archives it, unless the disk holds an LV in pieces (grown with lvextend), which user space
    reads in place: the inspection then says so and `prefers` the user-space engine. The kernel
    route inspects when asked for, with a forced raw view (METHOD), or when user space cannot
    read the image or one of its filesystems. JOINED: inspect_image's."""
    chosen = choose(engine)
    if chosen == "userspace":
        from vm2c_tui.read.userspace.inspect import inspect_userspace

        return inspect_userspace(source, look_inside=look_inside, progress=progress)
    if (engine or "auto") == "auto" and method is None and userspace.available():
        insp = _in_user_space(source, look_inside, progress)
        if insp is not None:
            return insp
    from vm2c_tui.read.kernel.inspect import inspect_image

    return inspect_image(source, look_inside=look_inside, method=method, progress=progress, joined=joined)


def _in_user_space(source, look_inside: bool, progress):
    """The user-space inspection, or None where the kernel route should look instead."""
    from vm2c_tui.read.userspace.inspect import inspect_userspace

    try:
        insp = inspect_userspace(source, look_inside=look_inside, progress=progress)
    except DamagedImage:
        raise  # the kernel route would say the same, later
    except Vm2cError:
        return None  # a format or feature only qemu reads: the kernel route says why if it cannot either
    if any(v.note.startswith("could not be read in user space") for v in insp.filesystems()):
        return None  # a filesystem our readers trip over may still mount
    pieces = [v.id for v in insp.in_pieces()]
    if pieces:
        insp.prefers = "userspace"
        insp.warnings.append(f"{', '.join(pieces)}: in pieces on the disk (grown with lvextend): read in user "
                             f"space, in place (the kernel route, without device-mapper, would copy them joined "
                             f"first)")
    return insp


def resolved(requested: str | None, insp) -> str:
    """The engine a conversion uses once its image is inspected (see inspect())."""
    if (requested or "auto") == "auto" and insp is not None and insp.prefers == "userspace":
        return "userspace"
    return choose(requested)
