"""The shape of the code: stages import only the ones below them, modules stay small, lint is clean."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PKG = Path(__file__).resolve().parents[2] / "vm2c_tui"
LONGEST = 50


def test_stage_contracts_hold():
    """#20: the stages import only those below them, the engines stand apart, and only the wizard
    imports Textual (import-linter's contracts in pyproject.toml; a cycle breaks the layers)."""
    proc = subprocess.run([str(Path(sys.executable).with_name("lint-imports")), "--no-cache"],
                          capture_output=True, text=True, cwd=PKG.parent)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr


def test_every_module_imports():
    """A lazy import inside a function would hide a broken name until that path runs: import them
    all, in a fresh interpreter (__main__ modules run the program, so they are only compiled)."""
    code = ("import importlib, pkgutil, sys, vm2c_tui, diskbuilder\n"
            "for pkg in (vm2c_tui, diskbuilder):\n"
            "    for m in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + '.'):\n"
            "        if not m.name.endswith('__main__'):\n"
            "            importlib.import_module(m.name)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=PKG.parent,
                          stdin=subprocess.DEVNULL, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_no_function_is_long():
    """#20: about 50 lines at most (the docstring counts); the longest are listed if any grow."""
    long = []
    for path in [*PKG.rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno + 1 > LONGEST:
                long.append(f"{path.relative_to(PKG)}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1})")
    assert not long, long


def test_no_folder_is_crowded():
    for d in [PKG, *[p for p in PKG.rglob("*") if p.is_dir() and p.name != "__pycache__"]]:
        mods = [p for p in d.glob("*.py") if p.name != "__init__.py"]
        assert len(mods) <= 12, f"{d.relative_to(PKG.parent)}: {len(mods)} modules"


def test_no_shell_true_anywhere():
    for path in PKG.rglob("*.py"):
        assert "shell=True" not in path.read_text(), path


def test_ruff_is_clean():
    proc = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", str(PKG), str(PKG.parent / "tests"), str(PKG.parent / "diskbuilder")],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_experiment_switches_are_read_only_in_tuning():
    """#20: every VM2C_* experiment switch lives in host/tuning.py (read at each call)."""
    import re

    switches = re.findall(r"VM2C_[A-Z_]+", (PKG / "host" / "tuning.py").read_text())
    assert {"VM2C_READAHEAD", "VM2C_LOOP_DIRECT_IO", "VM2C_EARLY_WRITEBACK", "VM2C_SOCKET_QUEUE",
            "VM2C_UPLOAD"} <= set(switches)
    assert "VM2C_SLOW_TAR" not in (PKG.parent / "tests").joinpath("conftest.py").read_text()  # a real option now
    for path in PKG.rglob("*.py"):
        if path.name == "tuning.py":
            continue
        for name in set(switches):
            assert f'"{name}"' not in path.read_text(), f"{path.relative_to(PKG)} reads {name} itself"
