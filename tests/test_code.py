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
