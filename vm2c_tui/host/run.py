"""The one place that runs a command.

Every external tool goes through `run()` (or `spawn()` for long-running
ones): it logs the equivalent shell line, never uses a shell, and turns a
failure into `Vm2cError`. `shell_line()` is the same rendering that feeds
`--dry-run` and the wizard's commands panel, so they cannot disagree.
"""

from __future__ import annotations

import ctypes
import logging
import os
import shlex
import shutil
import signal
import subprocess
import threading
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

from vm2c_tui.errors import Vm2cError

log = logging.getLogger("vm2c.run")

Cmd = Sequence[str]


class ShellVar(str):
    """A shell variable in a rendered plan (`"$LOOP1"`), never quoted away."""


def _quote(arg) -> str:
    if isinstance(arg, ShellVar):
        return f'"${arg}"'
    return shlex.quote(str(arg))


def shell_line(cmd: Cmd) -> str:
    """The command as a user would type it in a POSIX shell."""
    return " ".join(_quote(c) for c in cmd)


@dataclass
class CommandLog:
    """Shell lines of the commands run so far (for the commands panel)."""

    lines: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, line: str) -> None:
        with self._lock:
            self.lines.append(line)

    def snapshot(self) -> list[str]:
        with self._lock:
            return list(self.lines)


HISTORY = CommandLog()

# Mutating commands only; probes like blkid are noise for the panel.
_QUIET = {"blkid", "sfdisk", "qemu-img", "findmnt", "lsblk", "dpkg-query", "losetup-list"}


def _record(cmd: Cmd) -> None:
    line = shell_line(cmd)
    log.debug("run: %s", line)
    if os.path.basename(str(cmd[0])) not in _QUIET:
        HISTORY.add(line)


def which(tool: str) -> str | None:
    """Tools in sbin are not always on a non-root PATH."""
    found = shutil.which(tool)
    if found:
        return found
    for d in ("/usr/sbin", "/sbin", "/usr/local/sbin"):
        p = os.path.join(d, tool)
        if os.access(p, os.X_OK):
            return p
    return None


def _resolve(cmd: Cmd) -> list[str]:
    exe = which(str(cmd[0]))
    if exe is None:
        raise Vm2cError(f"{cmd[0]}: command not found (run `vm2c doctor` to see what is missing)")
    return [exe, *map(str, cmd[1:])]


def run(
    cmd: Cmd,
    *,
    check: bool = True,
    input: bytes | None = None,
    timeout: float | None = 120,
    what: str | None = None,
    env: dict[str, str] | None = None,
    sandbox=None,
) -> subprocess.CompletedProcess[bytes]:
    """Run `cmd`, capture its output, raise Vm2cError when it fails. A SANDBOX (confine.py)
    runs it where it sees only the paths vm2c allowed; the shell line shown is the tool's own."""
    _record(cmd)
    argv = _confined(_resolve(cmd), sandbox)
    try:
        proc = subprocess.run(
            argv,
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
            env=c_locale(cmd, env),
        )
    except subprocess.TimeoutExpired as exc:
        raise Vm2cError(f"{what or cmd[0]}: timed out after {timeout:.0f} s") from exc
    except FileNotFoundError:
        raise Vm2cError(f"{argv[0]} is not installed (vm2c doctor lists what is missing)") from None
    if check and proc.returncode != 0:
        detail = proc.stderr.decode(errors="replace").strip().splitlines()
        tail = detail[-1] if detail else f"exit status {proc.returncode}"
        raise Vm2cError(f"{what or cmd[0]} failed: {tail}")
    return proc


def text(cmd: Cmd, **kw) -> str:
    return run(cmd, **kw).stdout.decode(errors="replace")


def die_with_parent() -> None:
    """preexec_fn for tar and find: they must not outlive a vm2c killed with SIGKILL,
    they would keep the mounts busy."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


@contextmanager
def signals_held():
    """Ctrl-C and SIGTERM wait while a resource is acquired and recorded (a loop device, a
    mount, tar): an interrupt in between would leave it behind, unknown to `vm2c cleanup`.
    They are noted by a handler, not blocked, so the processes started meanwhile keep a
    normal signal mask, and delivered again when the block ends. Only the main thread
    receives signals, so only there is anything held."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []
    before = {s: signal.signal(s, lambda signum, _frame: pending.append(signum))
              for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in before.items():
            signal.signal(s, handler)
        if pending:
            signal.raise_signal(pending[0])


def spawn(cmd: Cmd, sandbox=None, **popen_kw) -> subprocess.Popen:
    """Start a long-running command (tar, qemu-storage-daemon)."""
    _record(cmd)
    popen_kw["env"] = c_locale(cmd, popen_kw.get("env"))
    return subprocess.Popen(_confined(_resolve(cmd), sandbox), **popen_kw)


# mtools turns FAT's UTF-16 names into the locale's charset: C would make every non-ASCII name '_'
_UTF8_NAMES = {"mcopy", "mattrib"}


def c_locale(cmd: Cmd, env: dict[str, str] | None) -> dict[str, str]:
    """ENV (or ours) with LC_ALL=C: vm2c reads sfdisk's, tar's and qemu's messages as text, so
    they must not be translated; mtools gets C.UTF-8 (English messages, UTF-8 names)."""
    utf8 = os.path.basename(str(cmd[0])) in _UTF8_NAMES
    return {**(os.environ if env is None else env), "LC_ALL": "C.UTF-8" if utf8 else "C"}


def _confined(argv: list[str], sandbox) -> list[str]:
    if sandbox is None:
        return argv
    wrapped = sandbox.wrap(argv)
    log.debug("confined: %s", shell_line(wrapped))
    return wrapped
