"""Write the daemon's unpacked layer to disk while the import still runs.

dockerd syncs the whole filesystem under its data root when it creates a
container (overlayfs syncs its upper directory; moby/moby#47630), so the smoke
test's first container waits for every byte the import just unpacked, all
written at once after the import. The unpack is CPU work and leaves the disk
idle meanwhile: syncing the daemon's filesystem every half second during the
import (and the Dockerfile route's build) overlaps the two. Measured on the benchmark disk, 3 alternating runs of
`vm2c convert` each: 12.8-14.8 s against 14.3-20.2 s (benchmarks/).

Only for a daemon on this machine (a unix socket) whose data root we can open;
otherwise nothing is done. At worst it syncs a filesystem early: data the
kernel would have written anyway.
"""

from __future__ import annotations

import ctypes
import logging
import os
import threading

log = logging.getLogger("vm2c.daemonfs")

INTERVAL = 0.5


def _syncfs():
    try:
        return ctypes.CDLL(None, use_errno=True).syncfs
    except (OSError, AttributeError):
        return None


class DaemonFlush:
    """A thread calling syncfs(2) on the daemon's data root until the context ends."""

    def __init__(self, docker_client, host: str):
        self.root = ""
        self.calls = 0
        self.why_not = ""
        self._fd = -1
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        syncfs = _syncfs()
        if not host.startswith("unix://"):
            self.why_not = f"the daemon is not on this machine ({host})"
        elif syncfs is None:
            self.why_not = "no syncfs(2) here"
        else:
            try:
                self.root = str(docker_client.info().get("DockerRootDir") or "")
                self._fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            except Exception as exc:  # noqa: BLE001 - an optimisation: never a failure
                self.why_not = f"cannot open the daemon's data root {self.root!r} ({exc})"
        self._sync = syncfs

    def __enter__(self) -> DaemonFlush:
        if self._fd >= 0:
            log.debug("syncing %s every %.1f s during the import", self.root, INTERVAL)
            self._thread = threading.Thread(target=self._run, args=(self._fd,), name="vm2c-daemonfs", daemon=True)
            self._thread.start()
        else:
            log.debug("not syncing the daemon's filesystem: %s", self.why_not)
        return self

    def _run(self, fd: int) -> None:
        try:
            while not self._stop.wait(INTERVAL):
                self._sync(fd)
                self.calls += 1
        finally:
            os.close(fd)

    def __exit__(self, *exc) -> None:
        """Not waiting for a syncfs in progress: what is left, the container start syncs."""
        self._stop.set()
        if self._thread is None and self._fd >= 0:
            os.close(self._fd)
        self._fd = -1

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)
