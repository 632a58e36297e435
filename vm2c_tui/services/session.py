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
import shutil
import signal
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil

from ..errors import Vm2cError
from .run import run, signals_held


def state_dir() -> Path:
    if os.geteuid() == 0:
        d = Path(os.environ.get("VM2C_STATE_DIR", "/run/vm2c"))
    else:
        base = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
        d = Path(os.environ.get("VM2C_STATE_DIR", os.path.join(base, f"vm2c-{os.getuid()}")))
    d.mkdir(mode=0o700, parents=True, exist_ok=True)
    return d


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

    # -- state file --------------------------------------------------------
    def _save(self) -> None:
        if not self.resources:
            if self._written:
                self.state_file.unlink(missing_ok=True)
                self._written = False
            return
        doc = {"pid": os.getpid(), "started": psutil.Process().create_time(), "purpose": self.purpose,
               "source": self.source, "resources": [r.to_json() for r in self.resources]}
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(doc, indent=1))
        os.replace(tmp, self.state_file)
        self._written = True

    def track(self, kind: str, ident: str, release: Callable[[], None], **extra) -> Resource:
        """Record a resource, and push its release onto the stack."""
        res = Resource(kind, ident, extra)
        self.resources.append(res)
        self._save()

        def _release() -> None:
            try:
                release()
            finally:
                self.resources.remove(res)
                self._save()

        self.callback(_release)
        return res

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
    if backing and bf.read_text().strip().removesuffix(" (deleted)") != backing:
        return  # reused by someone else since: not ours any more
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


def stale_runs(include_live: bool = False) -> Iterator[StaleRun]:
    for f in sorted(state_dir().glob("*.json")):
        try:
            doc = json.loads(f.read_text())
        except (OSError, ValueError):
            continue
        pid, started = int(doc.get("pid", 0)), float(doc.get("started", 0))
        alive = False
        try:
            alive = abs(psutil.Process(pid).create_time() - started) < 1
        except psutil.NoSuchProcess:
            pass
        if alive and not include_live:
            continue
        yield StaleRun(f, pid, doc.get("purpose", ""), doc.get("source", ""), doc.get("resources", []))


def cleanup(include_live: bool = False) -> list[str]:
    """Release what crashed runs left; returns a line per resource released."""
    done = []
    for st in stale_runs(include_live):
        remaining = []
        for r in reversed(st.resources):
            try:
                release_resource(r)
                done.append(f"released {r['kind']} {r['id']} (run {st.path.stem})")
            except Vm2cError as exc:
                remaining.append(r)
                done.append(f"could not release {r['kind']} {r['id']}: {exc}")
        if remaining:
            st.path.write_text(json.dumps({"pid": st.pid, "started": 0, "purpose": st.purpose,
                                           "source": st.source, "resources": list(reversed(remaining))}))
        else:
            st.path.unlink(missing_ok=True)
    return done
