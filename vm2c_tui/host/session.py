"""Every acquired resource, released in reverse order, and remembered on disk.

A `Session` is the ExitStack a conversion owns. Each resource (temp dir,
FUSE export process, loop device, mount) is entered on it and written to a
state file first, so a run killed with SIGKILL can be cleaned up later by
`vm2c cleanup`, which releases each resource by its own id (device path,
pid + start time, mount path), never by guessing names.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import stat
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil

from vm2c_tui.errors import Vm2cError
from vm2c_tui.host.confine import within
from vm2c_tui.host.outfile import write_new
from vm2c_tui.host.run import run, signals_held


def state_dir() -> Path:
    if os.geteuid() == 0:
        d = Path(os.environ.get("VM2C_STATE_DIR", "/run/vm2c"))
    else:
        base = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
        d = Path(os.environ.get("VM2C_STATE_DIR", os.path.join(base, f"vm2c-{os.getuid()}")))
    d.mkdir(mode=0o700, parents=True, exist_ok=True)
    _check_private(d)
    return d


def _check_private(d: Path) -> None:
    """The state directory says what root will unmount, detach and kill: it must be a real
    directory of ours that nobody else can write (a planted state file would steer cleanup)."""
    st = os.lstat(d)
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
        raise Vm2cError(f"state directory {d}: is not a directory (a symlink?); refusing to use it")
    if st.st_uid != os.geteuid():
        raise Vm2cError(f"state directory {d}: owned by uid {st.st_uid}, not {os.geteuid()}; refusing to use it")
    if st.st_mode & 0o022:
        raise Vm2cError(f"state directory {d}: mode {stat.S_IMODE(st.st_mode):04o} lets others write to it; "
                        "refusing to use it (chmod 0700)")


TEMP_PREFIX = "vm2c-"


@dataclass
class Resource:
    kind: str  # tempdir | process | loop | mount | nbd
    ident: str  # path, pid, device
    extra: dict

    def to_json(self) -> dict:
        return {"kind": self.kind, "id": self.ident, **self.extra}


class Session(contextlib.ExitStack):
    """One run's resources; the state file lives as long as any resource does."""

    def __init__(self, purpose: str = "run", source: str = "") -> None:
        super().__init__()
        self.run_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}"
        self.state_file = state_dir() / f"{self.run_id}.json"
        self.resources: list[Resource] = []
        self.purpose = purpose
        self.source = source
        self._written = False
        self.helpers: list[tuple[str, Callable[[], bool]]] = []  # (what a helper serves, "it ended on its own")

    # -- state file --------------------------------------------------------
    def _save(self) -> None:
        if not self.resources:
            if self._written:
                self.state_file.unlink(missing_ok=True)
                self._written = False
            return
        doc = {"pid": os.getpid(), "started": psutil.Process().create_time(), "purpose": self.purpose,
               "source": self.source, "resources": [r.to_json() for r in self.resources]}
        write_new(self.state_file, json.dumps(doc, indent=1).encode())  # atomic, 0600, no symlink followed
        self._written = True

    def track(self, kind: str, ident: str, release: Callable[[], None], **extra) -> Resource:
        """Record a resource, and push its release onto the stack."""
        res = self._record(kind, ident, extra)
        self.callback(self._give_back, res, release, True)
        return res

    @contextlib.contextmanager
    def holding(self, kind: str, ident: str, release: Callable[[], None], **extra) -> Iterator[Resource]:
        """A resource for a block's time, not the session's (remote services stopped for one tar):
        in the state file while held; released when the block ends, however it ends."""
        res = self._record(kind, ident, extra)
        try:
            yield res
        except BaseException:
            self._give_back(res, release, raising=False)  # the block's own error is the one to tell
            raise
        self._give_back(res, release, raising=True)

    def _record(self, kind: str, ident: str, extra: dict) -> Resource:
        res = Resource(kind, ident, extra)
        self.resources.append(res)
        self._save()
        return res

    def _give_back(self, res: Resource, release: Callable[[], None], raising: bool) -> None:
        """RELEASE, then RES off the record; if it fails, RES stays in the state file with why
        (raised again when RAISING)."""
        try:
            release()
        except BaseException as exc:
            res.extra["error"] = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
            self._save()
            if raising:
                raise
            return
        self.resources.remove(res)
        self._save()

    def lost(self) -> list[str]:
        """The helper processes (host/daemon.py) that ended before vm2c stopped them: what a
        read that failed midway was reading through (an ssh link to a remote disk, most often)."""
        return list(dict.fromkeys(what for what, ended in self.helpers if ended()))

    # -- common resources --------------------------------------------------
    def tempdir(self, label: str = "work", base: str | None = None) -> Path:
        with signals_held():
            path = Path(tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}{label}-", dir=base))
            os.chmod(path, 0o700)
            self.track("tempdir", str(path), lambda: release_tempdir(str(path)))
        return path


# -- release functions, shared with `vm2c cleanup` ---------------------------

def release_tempdir(path: str) -> None:
    if os.path.basename(path).startswith(TEMP_PREFIX) and os.path.isdir(path):
        if _is_mountpoint_under(path):
            raise Vm2cError(f"{path} still has something mounted under it; not removing it")
        shutil.rmtree(path, ignore_errors=True)


def _is_mountpoint_under(path: str) -> bool:
    prefix = os.path.realpath(path) + "/"
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mp = line.split()[4].replace("\\040", " ")
            if mp.startswith(prefix) or mp == prefix[:-1]:
                return True
    return False


def is_mounted(path: str) -> bool:
    real = os.path.realpath(path)
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4].replace("\\040", " ") == real for line in f)


def release_mount(path: str) -> None:
    if not is_mounted(path):
        return
    proc = run(["umount", path], check=False)
    if proc.returncode != 0 and is_mounted(path):
        # Something (a shell in the wizard's preview?) still holds it: detach lazily.
        run(["umount", "-l", path], what=f"umount {path}")


def release_loop(dev: str, backing: str = "") -> None:
    name = os.path.basename(dev)
    bf = Path(f"/sys/block/{name}/loop/backing_file")
    if not bf.exists():
        return  # already gone
    if bf.read_text().strip().removesuffix(" (deleted)") != backing:
        return  # reused by someone else since (or no backing recorded): not ours any more
    run(["losetup", "-d", dev], what=f"detach {dev}")


def release_process(pid: int, started: float, timeout: float = 10) -> None:
    try:
        proc = psutil.Process(pid)
        if abs(proc.create_time() - started) > 1:
            return  # pid reused
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout)
    except psutil.NoSuchProcess:
        return
    except psutil.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def release_nbd(dev: str) -> None:
    if Path(f"/sys/block/{os.path.basename(dev)}/pid").exists():
        run(["qemu-nbd", "-d", dev], what=f"disconnect {dev}")


# what vm2c itself starts: a state file naming any other process is not obeyed
OUR_PROCESSES = {"qemu-storage-daemon", "nbdfuse", "bwrap", "qemu-nbd", "ssh"}  # ssh: a disk's forward


def validate(r: dict, tempdirs: list[str]) -> str | None:
    """Why cleanup must not act on entry R (None: it is vm2c's own). TEMPDIRS are the run's
    own recorded temp dirs; every mount and FUSE file vm2c makes lies inside one."""
    kind, ident = r.get("kind"), r.get("id")
    if not isinstance(ident, str) or not ident:
        return "not a valid entry"
    ours = [os.path.realpath(t) + "/" for t in tempdirs if os.path.basename(t).startswith(TEMP_PREFIX)]

    def inside(path: str) -> bool:  # strictly below one of them: the temp dir itself is no mount point
        return within(os.path.realpath(path), ours)

    if kind == "tempdir":
        if not os.path.basename(ident).startswith(TEMP_PREFIX):
            return f"not a {TEMP_PREFIX}* temp dir"
        try:
            st = os.lstat(ident)
        except FileNotFoundError:
            return None
        return None if stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid() else "not a directory of ours"
    if kind == "mount":
        return None if inside(ident) else "not under one of this run's temp dirs"
    if kind == "loop":
        if not re.fullmatch(r"/dev/loop\d+", ident) or not r.get("backing"):
            return "not a loop device with a recorded backing file"
        ro = Path(f"/sys/block/{os.path.basename(ident)}/ro")
        return None if not ro.exists() or ro.read_text().strip() == "1" else "attached read-write: not vm2c's"
    if kind == "process":
        if not ident.isdigit() or not r.get("started"):
            return "no pid and start time"
        fuse = r.get("fuse_file")
        if fuse and not inside(fuse):
            return "its FUSE file is not under one of this run's temp dirs"
        try:
            p = psutil.Process(int(ident))
            if abs(p.create_time() - float(r["started"])) > 1:
                return None  # gone; the pid is someone else's now, and release_process leaves it
            if p.name() not in OUR_PROCESSES or p.name() != r.get("exe", p.name()):
                return f"pid {ident} runs {p.name()!r}, not a process vm2c starts"
        except psutil.Error:
            return None
        return None
    if kind == "nbd":
        return None if re.fullmatch(r"/dev/nbd\d+", ident) else "not an nbd device"
    return f"unknown kind {kind!r}"


def release_resource(r: dict) -> None:
    kind, ident = r["kind"], r["id"]
    if kind == "mount":
        release_mount(ident)
    elif kind == "loop":
        release_loop(ident, r.get("backing", ""))
    elif kind == "process":
        release_process(int(ident), float(r.get("started", 0)))
        fuse = r.get("fuse_file")
        if fuse and is_mounted(fuse):
            run(["umount", "-l", fuse], check=False)
    elif kind == "nbd":
        release_nbd(ident)
    elif kind == "tempdir":
        release_tempdir(ident)


# -- vm2c cleanup ------------------------------------------------------------

@dataclass
class StaleRun:
    path: Path
    pid: int
    purpose: str
    source: str
    resources: list[dict]


def _read_state(f: Path) -> dict | None:
    """A state file's document, opened without following a symlink; None if unreadable."""
    try:
        fd = os.open(f, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    with os.fdopen(fd) as fh:
        try:
            doc = json.loads(fh.read(1 << 20))
        except (OSError, ValueError):
            return None
    return doc if isinstance(doc, dict) and isinstance(doc.get("resources", []), list) else None


def stale_runs(include_live: bool = False) -> Iterator[StaleRun]:
    for f in sorted(state_dir().glob("*.json")):
        doc = _read_state(f)
        if doc is None:
            continue
        try:
            pid, started = int(doc.get("pid", 0)), float(doc.get("started", 0))
        except (TypeError, ValueError):
            pid, started = 0, 0.0
        alive = False
        try:
            alive = abs(psutil.Process(pid).create_time() - started) < 1
        except (psutil.Error, ValueError, OverflowError):
            pass
        if alive and not include_live:
            continue
        yield StaleRun(f, pid, doc.get("purpose", ""), doc.get("source", ""), doc.get("resources", []))


def cleanup(include_live: bool = False) -> list[str]:
    """Release what crashed runs left: a line per resource released, refused or still held.
    Each entry is checked first (validate); one that fails to release stays in its state file
    with the reason, and cleanup goes on with the next."""
    done = []
    for st in stale_runs(include_live):
        entries = [r for r in st.resources if isinstance(r, dict)]
        tempdirs = [r["id"] for r in entries if r.get("kind") == "tempdir" and isinstance(r.get("id"), str)]
        remaining = []
        for r in reversed(entries):
            what = f"{r.get('kind')} {r.get('id')!s:.200}"
            if r.get("kind") == "services":  # stopped on a remote by a run that died before starting them
                done.append(f"not restarted: {', '.join(map(str, r.get('names', [])))[:300]} on {what[9:]}, stopped "
                            f"by run {st.path.stem}: start them there")
                continue
            if why := validate(r, tempdirs):
                done.append(f"refused {what} (run {st.path.stem}): {why}")
                continue  # not ours: never acted on, and not kept either
            try:
                release_resource(r)
                done.append(f"released {what} (run {st.path.stem})")
            except Exception as exc:  # goes on past a bad entry
                r["error"] = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
                remaining.append(r)
                done.append(f"still held: {what}: {r['error']}")
        if remaining:
            write_new(st.path, json.dumps({"pid": st.pid, "started": 0, "purpose": st.purpose, "source": st.source,
                                           "resources": list(reversed(remaining))}).encode())
        else:
            st.path.unlink(missing_ok=True)
    return done
