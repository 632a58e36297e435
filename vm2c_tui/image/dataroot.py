"""Where a Docker daemon on this machine keeps its images, and whether an image fits there.

DockerRootDir is a path in the daemon's own mount namespace. The process at the other end of
the socket (SO_PEERCRED) says whose: dockerd itself, or pid 1 when systemd holds the socket
(socket activation, Debian's default), and /proc/PID/root leads to the same directory from
here. Any other peer (Docker Desktop's proxy, a daemon in another pid namespace, a TCP host)
may answer for a daemon elsewhere: then nothing is checked.
"""

from __future__ import annotations

import os
import socket
import struct
from dataclasses import dataclass

from vm2c_tui.errors import Vm2cError
from vm2c_tui.host.system import Filesystem, filesystem_of

MARGIN = 64 << 20  # the daemon's own metadata, tar-split files, a container's writable layer


@dataclass
class DataRoot:
    path: str  # as the daemon names it
    driver: str
    fs: Filesystem
    local: str  # the same directory, reached from here


def _peer_pid(host: str) -> int | None:
    if not host.startswith("unix://"):
        return None
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(2)
            s.connect(host.removeprefix("unix://"))
            pid, _uid, _gid = struct.unpack("3i", s.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                                               struct.calcsize("3i")))
    except OSError:
        return None
    return pid or None  # 0: the peer lives in another pid namespace


def local_data_root(client, host: str) -> DataRoot | None:
    """The daemon's data root, if it is on this machine and readable from here."""
    pid = _peer_pid(host)
    if pid is None:
        return None
    try:
        exe = os.path.basename(os.readlink(f"/proc/{pid}/exe"))
        info = client.info()
    except Exception:  # not ours to read (no root), or the daemon went: no check
        return None
    if pid != 1 and not exe.startswith("dockerd"):
        return None
    path = info.get("DockerRootDir") or ""
    local = f"/proc/{pid}/root{path}"
    if not path or not os.path.isdir(local):
        return None
    return DataRoot(path, info.get("Driver") or "?", filesystem_of(local), local)


def need_for(image_bytes: int, driver: str, smoke: bool) -> int:
    """What an import of IMAGE_BYTES takes; on vfs the smoke test's container is a full copy."""
    copies = 2 if smoke and driver == "vfs" else 1
    return int(image_bytes * 1.05) * copies + MARGIN


def require_room(client, host: str, image_bytes: int, smoke: bool) -> None:
    """Refuse before any byte is sent when the daemon's data root cannot hold the image."""
    root = local_data_root(client, host)
    if root is None:
        return
    need = need_for(image_bytes, root.driver, smoke)
    if root.fs.free < need:
        hint = " (--no-smoke halves that on vfs)" if smoke and root.driver == "vfs" else ""
        raise Vm2cError(f"the Docker data root {root.path} has only {root.fs.free >> 20} MiB free; "
                        f"this image needs about {need >> 20} MiB there{hint}")
