"""A disk image on a machine over SSH (ssh://host/path/disk.qcow2), copied into a private
directory to be read: `cat` there, its bytes through ssh into a file created new here (0600,
O_EXCL|O_NOFOLLOW), with progress. The source is only read; the room is checked first. The
fallback where the remote has no qemu-nbd to serve it in place (remoteview.py); qemu's own ssh
driver is not used: qemu runs confined here, with no network."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

from vm2c_tui.errors import Vm2cError
from vm2c_tui.host.run import spawn
from vm2c_tui.source.ssh import Remote


def fetch(remote: Remote, dest_dir: Path, note=lambda msg: None) -> str:
    out = remote.run(["stat", "-L", "-c", "%s %F", "--", remote.path], timeout=60).decode().split(" ", 1)
    if len(out) != 2 or not out[0].isdigit() or out[1].strip() not in ("regular file", "regular empty file",
                                                                           "block special file"):
        raise Vm2cError(f"{remote.url}: not a regular file or block device on the remote")
    size = int(out[0])
    free = shutil.disk_usage(dest_dir).free
    if size + (64 << 20) > free:
        raise Vm2cError(f"{remote.url}: {size >> 20} MiB to copy, {dest_dir.parent} has {free >> 20} MiB free "
                        f"(set TMPDIR to a roomier place)")
    dest = dest_dir / (os.path.basename(remote.path) or "disk")
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        proc = spawn(remote.argv(["cat", "--", remote.path]), stdout=fd, stderr=subprocess.PIPE,
                     stdin=subprocess.DEVNULL)
        last = 0.0
        while proc.poll() is None:
            if time.monotonic() - last >= 1:
                last = time.monotonic()
                done = os.fstat(fd).st_size
                note(f"copying {os.path.basename(remote.path)} from {remote.host}: "
                     f"{100 * done // max(size, 1)} % ({done >> 20} of {size >> 20} MiB)")
            time.sleep(0.05)
        err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    finally:
        os.close(fd)
    if proc.returncode == 0 and os.path.getsize(dest) == size:
        note(f"copied {os.path.basename(remote.path)} from {remote.host}: {size >> 20} MiB")
    if proc.returncode == 255:
        raise remote.explain(err)
    if proc.returncode != 0 or os.path.getsize(dest) != size:
        raise remote.failed("cat", err, proc.returncode) if proc.returncode else Vm2cError(
            f"{remote.url}: the copy ended at {os.path.getsize(dest)} of {size} bytes")
    return str(dest)
