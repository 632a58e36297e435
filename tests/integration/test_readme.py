"""The README's promises to a newcomer: what it names is in a fresh clone, and its first
command works there (a bare `demo` ignore rule once kept scripts/demo out of every clone)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from conftest import REPO, _state

README = (REPO / "README.md").read_text()
TOP = ("scripts/", "docs/", "benchmarks/", "screenshots/", "vm2c_tui/", "diskbuilder/", "tests/", ".ci/")


def named_paths(text: str) -> set[str]:
    """Repo paths the README names: ./scripts/X commands, relative links and images, and
    backticked paths under a tracked top-level folder (globs and generated demo/ files aside)."""
    found = {m.removeprefix("./") for m in re.findall(r"\./scripts/[\w.-]+", text)}
    found |= {m for m in re.findall(r"\]\(([^)#:\s]+)\)", text)}
    for tok in re.findall(r"`([^`\s]+)`", text):
        if tok.startswith(TOP) and not re.search(r"[*?{}\[\]<>]|\.\.\.", tok):
            found.add(tok.rstrip("/.,;"))
    return found


def test_named_paths_finds_what_a_reader_sees():
    text = "run `./scripts/demo`, see [x](docs/a.md) ![s](screenshots/1.svg) and `benchmarks/*.md`"
    assert named_paths(text) == {"scripts/demo", "docs/a.md", "screenshots/1.svg"}


def test_every_path_the_readme_names_is_tracked_by_git():
    paths = named_paths(README)
    assert "scripts/demo" in paths and "scripts/test" in paths
    tracked = set(subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True,
                                 check=True).stdout.splitlines())
    dirs = {str(Path(p).parent) for p in tracked} | {str(q) for p in tracked for q in Path(p).parents}
    missing = sorted(p for p in paths if p not in tracked and p.rstrip("/") not in dirs)
    ignored = [p for p in missing if subprocess.run(["git", "check-ignore", "-q", p], cwd=REPO).returncode == 0]
    assert not missing, f"README names paths a fresh clone lacks: {missing} (ignored by .gitignore: {ignored})"
    for p in (p for p in paths if p.startswith("scripts/")):
        mode = subprocess.run(["git", "ls-files", "-s", p], cwd=REPO, capture_output=True, text=True).stdout
        assert mode.startswith("100755"), f"{p} is not executable in git: {mode!r}"


def test_setup_with_everything_present_says_so_in_one_line():
    """The suite ran scripts/setup already: a second run has nothing to do."""
    proc = subprocess.run([str(REPO / "scripts/setup")], capture_output=True, text=True,
                          env={**os.environ, "VM2C_VENV": sys.prefix})
    assert proc.returncode == 0 and proc.stdout == "", proc
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and re.fullmatch(r"setup: everything present \(\d+ Debian packages, the venv\) in [\d.]+ s",
                                            lines[0]), lines


def _dockerds() -> set[int]:
    out = subprocess.run(["pgrep", "-x", "dockerd"], capture_output=True, text=True).stdout
    return {int(x) for x in out.split()}


class Tmux:
    """A tmux server of the test's own, one window of 100x30."""

    def __init__(self, name: str):
        self.base = ["tmux", "-L", name]

    def start(self, command: str) -> None:
        subprocess.run([*self.base, "new-session", "-d", "-x", "100", "-y", "30", command], check=True)

    def screen(self) -> str:
        return subprocess.run([*self.base, "capture-pane", "-p"], capture_output=True, text=True).stdout

    def keys(self, *keys: str) -> None:
        subprocess.run([*self.base, "send-keys", *keys], check=True)

    def kill(self) -> None:
        subprocess.run([*self.base, "kill-server"], capture_output=True)


def _wait_for(cond, timeout: float, what: str, shown) -> None:
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}; the screen shows:\n{shown()}")
        time.sleep(0.3)


@pytest.mark.skipif(not shutil.which("tmux"), reason="tmux not installed (scripts/setup installs it)")
def test_readme_first_command_in_a_fresh_clone(tmp_path):
    """git clone, ./scripts/demo in a terminal, the partition step with the LVM root, q:
    exit 0 and nothing of the demo's left (loop devices, mounts, qemu, its dockerd)."""
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
    status = tmp_path / "status"
    before, daemons = _state(), _dockerds()
    # the suite's venv (no second pip install); no DOCKER_HOST, so the demo starts its own daemon
    venv = sys.prefix
    tmux = Tmux(f"vm2c-test-{tmp_path.name}")
    tmux.start(f"cd {clone} && env -u DOCKER_HOST VM2C_VENV={venv} TMPDIR={tempfile.gettempdir()} "
               f"./scripts/demo; echo $? > {status}")
    try:
        _wait_for(lambda: "demo/root" in tmux.screen() and "Demo Linux" in tmux.screen(), 240,
                  "the partition step with the LVM root", tmux.screen)
        assert "LVM LV" in tmux.screen()
        tmux.keys("q")
        _wait_for(status.exists, 60, "the demo to exit", tmux.screen)
        time.sleep(0.2)
        assert status.read_text().strip() == "0"
    finally:
        tmux.kill()
    assert _dockerds() <= daemons, "the demo's dockerd is still running"
    after = _state()
    for key in before:
        assert not sorted(set(after[key]) - set(before[key])), f"left behind ({key})"
    assert (clone / "demo" / "demo.qcow2").exists()
