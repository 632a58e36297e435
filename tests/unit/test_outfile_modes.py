"""Files vm2c writes: 0600 whatever the umask, nothing followed or left partial."""

from __future__ import annotations

import os
import stat

import pytest

from vm2c_tui.errors import Vm2cError
from vm2c_tui.host.outfile import OutputFile, write_new


def test_fifo_and_directory_in_the_way(tmp_path):
    os.mkfifo(tmp_path / "img.tar")
    (tmp_path / "Dockerfile").mkdir()
    for name in ("img.tar", "Dockerfile"):
        with pytest.raises(Vm2cError, match="not a regular file"):
            write_new(tmp_path / name, b"x")


def test_written_0600_whatever_the_umask_and_a_regular_file_is_replaced(tmp_path):
    (tmp_path / "img.tar").write_bytes(b"old")
    old = os.umask(0)
    try:
        write_new(tmp_path / "img.tar", b"new")
    finally:
        os.umask(old)
    st = os.lstat(tmp_path / "img.tar")
    assert stat.S_IMODE(st.st_mode) == 0o600 and (tmp_path / "img.tar").read_bytes() == b"new"
    assert not (tmp_path / "img.tar.partial").exists()


def test_a_failed_write_leaves_no_partial(tmp_path):
    with pytest.raises(RuntimeError):
        with OutputFile(tmp_path / "img.tar") as out:
            os.write(out.fd, b"half")
            raise RuntimeError
    assert os.listdir(tmp_path) == []
