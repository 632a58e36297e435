"""The helper processes a conversion starts and owns (qemu-storage-daemon, nbdfuse, an ssh
forward): started with their stderr in a log, recorded on the session (pid, start time, name:
what `vm2c cleanup` checks), waited for until ready, stopped with the FUSE file they show."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import psutil

from vm2c_tui.errors import Vm2cError
from vm2c_tui.host.run import run, signals_held, spawn
from vm2c_tui.host.session import Session, release_process


def start_daemon(session: Session, cmd: list[str], log: Path, ready, what: str, *, sandbox=None,
                 fuse_file: Path | None = None, timeout: float = 30, hold_stdin: bool = False) -> None:
    """CMD started, recorded on SESSION (pid, start time, name: what `vm2c cleanup` checks) and
    waited for until READY. Its stderr goes to LOG in our private directory, not a pipe: a
    daemon that lives as long as the conversion would block once an undrained pipe filled.
    HOLD_STDIN: its stdin a pipe held open, and its stdout in LOG too (an ssh whose remote side
    lives until that stdin closes, and says it is ready on stdout); closed first when stopped."""
    with signals_held(), open(log, "wb") as err:
        proc = spawn(cmd, sandbox=sandbox, stdin=subprocess.PIPE if hold_stdin else subprocess.DEVNULL,
                     stdout=err if hold_stdin else subprocess.DEVNULL, stderr=err, start_new_session=True)
        p = psutil.Process(proc.pid)
        started = p.create_time()
        extra = {"fuse_file": str(fuse_file)} if fuse_file else {}
        state = {"stopping": False, "lost": False}

        def stop() -> None:
            state["lost"], state["stopping"] = proc.poll() is not None, True
            stop_daemon(proc, started, fuse_file)

        session.track("process", str(proc.pid), stop, started=started, name=cmd[0], exe=p.name(), **extra)
        session.helpers.append((what, lambda: state["lost"] or (not state["stopping"] and proc.poll() is not None)))
    deadline = time.monotonic() + timeout
    while not ready():
        if proc.poll() is not None:
            tail = log.read_text(errors="replace").strip().splitlines()
            raise Vm2cError(f"{what} failed: {tail[-1] if tail else f'exit status {proc.returncode}'}")
        if time.monotonic() > deadline:
            raise Vm2cError(f"{what}: not ready after {timeout:.0f} s")
        time.sleep(0.01)


def stop_daemon(proc: subprocess.Popen, started: float, fuse_file: Path | None) -> None:
    if proc.stdin is not None:  # its remote side ends on this EOF (and cleans up there): give it a moment
        proc.stdin.close()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
    release_process(proc.pid, started)
    proc.poll()  # reaped: no zombie under a subreaper
    if fuse_file and fuse_mounted(fuse_file):
        run(["umount", "-l", str(fuse_file)], check=False)


def fuse_mounted(path: Path) -> bool:
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == str(path) for line in f)


def nbdfuse_cmd(raw: str, sock: str, pidfile: str) -> list[str]:
    """RAW (VIEWDIR/raw) as a read-only file over the export 'd' on SOCK."""
    return ["nbdfuse", "-r", "-P", pidfile, raw, f"nbd+unix:///d?socket={sock}"]
