"""The unit tier keeps its promise: it passes as nobody (no root), with no disks and no daemon."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import REPO


def _grant_nobody_search() -> list[Path]:
    """Search permission for nobody on the checkout's and the interpreter's ancestors (CI may
    clone into a 0700 directory; pyenv lives under /root), by ACL, to be taken back after."""
    granted = []
    for top in (REPO / "tests" / "unit", Path(os.path.realpath(sys.executable)), Path(sys.prefix)):
        for d in [top, *top.parents]:
            if d.is_dir() and not d.stat().st_mode & 0o001 and d not in granted:
                subprocess.run(["setfacl", "-m", "u:nobody:x", d], check=True)
                granted.append(d)
    return granted


def test_the_unit_tier_passes_as_nobody():
    granted = _grant_nobody_search()
    try:
        env = {"PATH": "/usr/bin:/bin", "HOME": "/tmp", "PYTHONDONTWRITEBYTECODE": "1"}
        proc = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--",
                               sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W",
                               "ignore::UserWarning", "tests/unit"],
                              capture_output=True, text=True, env=env, cwd=REPO, timeout=300)
    finally:
        for d in reversed(granted):
            subprocess.run(["setfacl", "-x", "u:nobody", d], check=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout and "skipped" not in proc.stdout
