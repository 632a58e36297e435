"""Tools that open an image by name run where they can open only what vm2c allowed.

An image names other files (qcow2 backing and data files, VMDK extents and parents), and qemu
opens them as root. imagerefs.py checks those names first, for a good one-line message, but a
second parser always drifts from qemu's; safety comes from here instead. Each such tool runs
under bubblewrap with a private mount namespace that holds the system's programs (/usr, read
only), an empty /dev of its own (no host disks), its own /proc and /tmp, no network, and the
paths vm2c resolved: the image's directory read-only, an output directory read-write. A
backing file named /dev/sda, /etc/shadow, ../../elsewhere or nbd://host simply is not there.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from vm2c_tui.errors import Vm2cError
from vm2c_tui.host.run import which

IMAGE = "/image"  # where a tool that parses its file argument finds the one file it may read
SYSTEM_DIRS = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
SYSTEM_FILES = ("/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/localtime")


def within(path: str, dirs: Iterable[str]) -> bool:
    """PATH is one of DIRS or lies below one (plain string paths, already normalised)."""
    return any(path == d or path.startswith(d.rstrip("/") + "/") for d in dirs)


def trusted_dirs() -> list[str]:
    """Directories the operator said to trust for the files an image names (vm2c --trust-dir,
    which sets VM2C_TRUST_DIRS): shown read-only to qemu beside the image's own directory."""
    raw = os.environ.get("VM2C_TRUST_DIRS", "")
    return [os.path.realpath(d) for d in raw.split(os.pathsep) if d and os.path.isdir(d)]


@dataclass
class Sandbox:
    """What the confined tool may see: READ paths read-only, WRITE paths read-write, DEVICES
    (a host /dev/nbdN, say) as themselves. Paths appear at their own absolute names."""

    read: list[str] = field(default_factory=list)
    write: list[str] = field(default_factory=list)
    devices: list[str] = field(default_factory=list)
    mapped: list[tuple[str, str]] = field(default_factory=list)  # (host path, name inside), read-only

    @classmethod
    def for_file(cls, path: str | Path, inside: str = "", write: Iterable[str | Path] = ()) -> Sandbox:
        """One raw view or image (a file, or a block device such as /dev/nbd0) and nothing else;
        with INSIDE, shown under that name (for tools that parse their file argument: debugfs
        splits 'FILE?offset=' at the first '?', mtools 'FILE@@OFFSET' at the first '@@')."""
        path = os.path.abspath(path)
        box = cls(write=[str(w) for w in write])
        if inside:
            box.mapped.append((path, inside))
        elif stat.S_ISBLK(os.stat(path).st_mode):
            box.devices.append(path)
        else:
            box.read.append(path)
        return box

    @classmethod
    def for_image(cls, image: str | Path, *, write: Iterable[str | Path] = (),
                  devices: Iterable[str] = ()) -> Sandbox:
        """The image's directory (where qemu resolves the names it holds, from the path as
        given), and the file itself where that path is a symlink to elsewhere."""
        given = os.path.abspath(image)
        read = [os.path.dirname(given)]
        real = os.path.realpath(given)
        if not real.startswith(read[0] + os.sep):
            read.append(real)
        read += trusted_dirs()
        return cls(read, [str(w) for w in write], list(devices))

    def allows(self, path: str, base: str) -> bool:
        """Whether PATH (relative names from BASE, as qemu takes them) is inside what is shown."""
        shown = (*self.read, *self.write, *self.devices, *(d for _, d in self.mapped))
        return within(os.path.normpath(os.path.join(base, path)), shown)

    def wrap(self, cmd: Sequence[str]) -> list[str]:
        return [*bwrap_prefix(self), *map(str, cmd)]


def bwrap_prefix(box: Sandbox) -> list[str]:
    exe = which("bwrap")
    if not exe:
        raise Vm2cError("bwrap (bubblewrap) is not installed: vm2c opens disk images only inside its sandbox, "
                        "so an image cannot make qemu open host files (apt-get install bubblewrap)")
    # as root, no user namespace: root in one loses DAC override on files of unmapped owners
    # (an operator's 0600 image); without root bwrap needs one
    ns = ["--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
    if os.geteuid() != 0:
        ns.insert(0, "--unshare-user")
    argv = [exe, *ns, "--die-with-parent", "--ro-bind", "/usr", "/usr"]
    for d in SYSTEM_DIRS:
        if os.path.islink(d):
            argv += ["--symlink", os.readlink(d), d]
        elif os.path.isdir(d):
            argv += ["--ro-bind", d, d]
    for f in SYSTEM_FILES:
        if os.path.exists(f):
            argv += ["--ro-bind", f, f]
    argv += ["--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp"]
    for p in _outermost(box.read):
        argv += ["--ro-bind", p, p]
    for p in box.write:
        argv += ["--bind", p, p]
    for d in box.devices:
        argv += ["--dev-bind", d, d]
    for src, dest in box.mapped:
        if stat.S_ISBLK(os.stat(src).st_mode):
            argv += ["--dev-bind", src, dest, "--remount-ro", dest]
        else:
            argv += ["--ro-bind", src, dest]
    return [*argv, "--chdir", "/", "--"]


def _outermost(paths: Iterable[str]) -> list[str]:
    """Each path once, and none inside another (a bind over a bind would hide nothing, but
    is noise in the log)."""
    out: list[str] = []
    for p in sorted({os.path.abspath(p) for p in paths}, key=len):
        if not within(p, out):
            out.append(p)
    return out
