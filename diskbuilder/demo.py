"""scripts/demo's body: the demo disk, a private dockerd when none answers, then vm2c.

    scripts/demo                 the wizard on demo/demo.qcow2
    scripts/demo ARGS...         the CLI, run in demo/ (so `inspect demo.vdi` names the demo disk)
    scripts/demo --screenshots   regenerate screenshots/*.svg

The disk is built once per builder version (demo/.builder-key). A daemon this started is
stopped by its own pid when vm2c exits, however it exits; vm2c releases its own mounts.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from diskbuilder import builder_key

REPO = Path(__file__).resolve().parents[1]
FORMATS = (("qcow2", "qcow2"), ("vdi", "vdi"), ("vmdk", "vmdk"))


def say(line: str) -> None:
    print(f"demo: {line}", file=sys.stderr, flush=True)


def demo_disk(dest: Path) -> Path:
    """DEST/demo.qcow2 (and .raw/.vdi/.vmdk), rebuilt only when the builder changed."""
    stamp, key = dest / ".builder-key", builder_key()
    disk = dest / "demo.qcow2"
    if disk.exists() and stamp.exists() and stamp.read_text().strip() == key:
        return disk
    from diskbuilder import build as b
    from diskbuilder.recipes import build

    say(f"building the demo disk in {dest} (about half a minute, once)")
    dest.mkdir(parents=True, exist_ok=True)
    tmp = dest / ".building"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(mode=0o700)
    raw = build("demo", tmp)
    for fmt, ext in FORMATS:
        b.convert(raw, fmt, tmp / f"demo.{ext}")
    for p in sorted(tmp.glob("demo.*")):
        os.replace(p, dest / p.name)
    tmp.rmdir()
    stamp.write_text(key + "\n")
    return disk


def command(argv: list[str], disk: Path) -> list[str]:
    py = [sys.executable]
    if argv == ["--screenshots"]:
        return [*py, "-m", "vm2c_tui.tui.screenshots", str(disk), str(REPO / "screenshots")]
    return [*py, "-m", "vm2c_tui", *(argv or ["tui", disk.name])]


def wait_forwarding(child: subprocess.Popen) -> int:
    """The child's exit status; SIGTERM and SIGHUP reach it (Ctrl-C reaches it through the
    terminal), and the launcher waits for it to release what it holds."""
    def forward(signum, _frame):
        if child.poll() is None:
            child.send_signal(signum)

    for s in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, forward)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the child has its own; we outlive it
    return child.wait()


def main(argv: list[str]) -> int:
    if os.geteuid() != 0:
        say("needs root (the demo disk is built with loop devices and LVM); run it with sudo")
        return 2
    demo_dir = Path(os.environ.get("VM2C_DEMO_DIR", REPO / "demo")).resolve()
    disk = demo_disk(demo_dir)
    from vm2c_tui.errors import Vm2cError
    from vm2c_tui.image.dockerd import PrivateDockerd, daemon_answers

    env = dict(os.environ)
    daemon = None
    if not daemon_answers():
        say("no Docker daemon answers: starting a private one for this demo")
        daemon = PrivateDockerd()
        try:
            env["DOCKER_HOST"] = daemon.start()
        except Vm2cError as exc:  # the wizard still works: its build step offers a saved archive
            say(f"could not start one ({exc.message}); going on without a daemon")
            daemon = None
    try:
        child = subprocess.Popen(command(argv, disk), cwd=demo_dir, env=env)
        return wait_forwarding(child)
    finally:
        if daemon:
            daemon.stop()
            say("the private Docker daemon was stopped")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
