"""Errors carry their kind and exit status; the CLI turns one into one line, never a traceback."""

from __future__ import annotations

import subprocess
import sys
import tarfile

from conftest import REPO

from vm2c_tui.errors import DamagedImage, NeedsRoot, NoDaemon, Vm2cError


def test_the_kind_survives_naming_the_image():
    err = NoDaemon("no Docker daemon answers").about("disk.vdi")
    assert isinstance(err, NoDaemon) and err.message == "disk.vdi: no Docker daemon answers"
    assert err.exit_code == 2 and Vm2cError("x", exit_code=5).about("y").exit_code == 5
    assert all(issubclass(k, Vm2cError) for k in (NoDaemon, NeedsRoot, DamagedImage))


def test_build_with_no_daemon_is_one_line_naming_the_socket(tmp_path):
    with tarfile.open(tmp_path / "img.tar", "w"):
        pass
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONPATH": str(REPO),
           "DOCKER_HOST": f"unix://{tmp_path}/none.sock"}
    proc = subprocess.run([sys.executable, "-m", "vm2c_tui", "build", str(tmp_path), "--tag", "t/x:1"],
                          capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        f"vm2c: no Docker daemon answers at unix://{tmp_path}/none.sock (no socket there); start one or point "
        "DOCKER_HOST at one"]
