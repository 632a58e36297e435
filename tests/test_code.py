"""The shape of the code: the service layer knows nothing of Textual, and lint is clean."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PKG = Path(__file__).resolve().parent.parent / "vm2c_tui"


def test_services_never_import_textual():
    for path in [*(PKG / "services").glob("*.py"), PKG / "cli.py", PKG / "cli_convert.py", PKG / "cli_image.py"]:
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for n in names:
                assert not n.startswith(("textual", "rich")), f"{path.name} imports {n}"


def test_no_shell_true_anywhere():
    for path in PKG.rglob("*.py"):
        assert "shell=True" not in path.read_text(), path


def test_ruff_is_clean():
    proc = subprocess.run([sys.executable, "-m", "ruff", "check", str(PKG), str(PKG.parent / "tests")],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_experiment_switches_are_read_only_in_tuning():
    """#20: every VM2C_* experiment switch lives in services/tuning.py (read at each call)."""
    import re

    switches = re.findall(r"VM2C_[A-Z_]+", (PKG / "services" / "tuning.py").read_text())
    assert {"VM2C_READAHEAD", "VM2C_LOOP_DIRECT_IO", "VM2C_EARLY_WRITEBACK", "VM2C_SOCKET_QUEUE", "VM2C_UPLOAD",
            "VM2C_SLOW_TAR"} <= set(switches)
    for path in PKG.rglob("*.py"):
        if path.name == "tuning.py":
            continue
        for name in set(switches):
            assert f'"{name}"' not in path.read_text(), f"{path.relative_to(PKG)} reads {name} itself"
