"""Write the daemon's new layer to disk while the import is still running.

dockerd syncs the whole filesystem under its data root whenever it creates or stops a
container: overlayfs syncs its upper directory at unmount, and the container's init layer
is unmounted before the container starts (moby/moby#47630). On a machine whose memory holds
the whole layer below the kernel's dirty thresholds, nothing is written back during an
import, so the smoke test's container (or the operator's first `docker run`) waits for every
byte of the layer at once: 1.3 GB took 1.3-2.1 s on the benchmark's VM, after the import.

syncfs(2) on the data root once a second during the import moves those writes into the
import's own time, while the daemon unpacks on the CPU and the disk has nothing else to do.
The daemon asks for the same flush at every container start, so this adds no writes, only
starts them earlier. `VM2C_EARLY_WRITEBACK=0` turns it off.
"""

from __future__ import annotations

import ctypes
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from vm2c_tui.host import tuning

EVERY = 1.0  # seconds between two syncfs calls
THREAD_NAME = "vm2c-writeback"


def _syncfs():
    libc = ctypes.CDLL(None, use_errno=True)  # syncfs is in glibc since 2.14
    return getattr(libc, "syncfs", None)


def _flush_until(stop: threading.Event, fd: int, every: float) -> None:
    """Owns FD: a caller that stops waiting never closes it under a running syncfs."""
    try:
        syncfs = _syncfs()
        while syncfs is not None and not stop.wait(every):
            syncfs(fd)  # ctypes releases the GIL for the call; a failure only means no head start
    finally:
        os.close(fd)


def enabled() -> bool:
    return tuning.early_writeback()


@contextmanager
def ahead(path: str | None, every: float = EVERY) -> Iterator[None]:
    """Flush the filesystem holding PATH every EVERY seconds while the block runs.
    Leaving does not wait for a syncfs in progress: a Ctrl-C is not held up by a slow disk,
    and the thread ends as soon as that call returns."""
    if not path or not enabled():
        yield
        return
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:  # not ours to open: the import goes on without a head start
        yield
        return
    stop = threading.Event()
    try:
        threading.Thread(target=_flush_until, args=(stop, fd, every), name=THREAD_NAME, daemon=True).start()
    except BaseException:
        os.close(fd)
        raise
    try:
        yield
    finally:
        stop.set()
