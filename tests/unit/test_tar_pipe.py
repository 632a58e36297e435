"""tar's pipe hands over whole 512-byte records."""

from __future__ import annotations

import fcntl
import os

from vm2c_tui.archive import gnutar as arc


def test_tar_pipe_holds_a_whole_tar_record():
    """tar writes 1 MiB records; a default 64 KiB pipe wakes the reader 16 times for each."""
    r, w = os.pipe()
    try:
        arc.widen_pipe(w)
        assert fcntl.fcntl(r, fcntl.F_GETPIPE_SZ) == arc.CHUNK == 1 << 20
    finally:
        os.close(r)
        os.close(w)
