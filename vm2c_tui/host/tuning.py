"""Every experiment switch in one place: environment variables that turn a measured speed-up
off (or force one way) for benchmarks, tight machines and tests. They are read at each call,
so a benchmark or a test can set them for one vm2c run. The figures behind each default are in
benchmarks/results.md.

  VM2C_READAHEAD=0        no read-ahead thread beside tar
  VM2C_LOOP_DIRECT_IO=0|1 the loop device's way of reading, instead of asking the page cache
  VM2C_EARLY_WRITEBACK=0  no syncfs of the daemon's data root during an import
  VM2C_SOCKET_QUEUE=0     the kernel's default unix-socket queue to the daemon
  VM2C_UPLOAD=sdk         the docker SDK sends the import's body, not vm2c's splice

A slow archive (for demos, and tests that interrupt one) is a real option, --limit-rate.
"""

from __future__ import annotations

import os


def _off(name: str) -> bool:
    return os.environ.get(name) == "0"


def readahead() -> bool:
    return not _off("VM2C_READAHEAD")


def loop_direct_io() -> bool | None:
    """True/False when forced, None: decide from the page cache (pagecache.direct_io_pays)."""
    forced = os.environ.get("VM2C_LOOP_DIRECT_IO")
    return forced == "1" if forced in ("0", "1") else None


def early_writeback() -> bool:
    return not _off("VM2C_EARLY_WRITEBACK")


def socket_queue() -> bool:
    return not _off("VM2C_SOCKET_QUEUE")


def upload_via_sdk() -> bool:
    return os.environ.get("VM2C_UPLOAD") == "sdk"
