"""The tar: GNU tar over the assembled tree, flags in one function, progress events.

No `--sparse` by default: Docker rejects GNU sparse members at `docker save`
("could not verify layer data"), and img.tar exists to go into Docker. Sparse
files are stored expanded (their holes as zeros), which is what the image will
hold anyway. `vm2c archive --sparse` asks for them, for a tar kept as a file;
it then writes no Dockerfile and `vm2c build` refuses the tar.

No `--acls` either: GNU tar writes ACLs as text with the *host's* user names
(uid 1000 in the guest became "cloudsdk", the host's user 1000), and Docker
ignores those headers. ACLs travel instead as their `system.posix_acl_*`
xattrs (binary, numeric ids), which `--xattrs-include=*` keeps and Docker applies.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import Vm2cError
from .excludes import Filters, anchored_patterns
from .guestpath import GuestPathError, GuestRoot
from .presets import Rule
from .readahead import ReadAhead
from .run import die_with_parent, spawn

CHUNK = 1 << 20


@dataclass
class Progress:
    bytes_done: int
    bytes_total: int
    files_done: int
    files_total: int
    elapsed: float
    current: str

    @property
    def rate(self) -> float:
        return self.bytes_done / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def fraction(self) -> float:
        if self.bytes_total <= 0:
            return 0.0
        return min(self.bytes_done / self.bytes_total, 0.99)

    @property
    def eta(self) -> float | None:
        if self.rate <= 0 or self.bytes_total <= self.bytes_done:
            return None
        return (self.bytes_total - self.bytes_done) / self.rate


ProgressFn = Callable[[Progress], None]


@dataclass
class TarSpec:
    tree: Path
    excludes: list[Rule] = field(default_factory=list)  # anchored patterns
    user_excludes: list[str] = field(default_factory=list)
    one_file_system: bool = False
    sparse: bool = False  # GNU sparse members: only for a tar kept as a file, never for Docker


def tar_command(spec: TarSpec, output: str = "-", index_file: str | None = None) -> list[str]:
    """The one place where tar's flags are decided."""
    # No --selinux (security.selinux travels with the other xattrs) and no --sort=name:
    # each costs a pass per file, measured at 20-30 % of the archive's time (benchmarks/).
    cmd = ["tar", "--create", f"--file={output}", f"--directory={spec.tree}", "--format=pax",
           "--numeric-owner", "--xattrs", "--xattrs-include=*",
           "--pax-option=delete=atime,delete=ctime", "--blocking-factor=2048"]
    if spec.one_file_system:
        cmd.append("--one-file-system")
    if spec.sparse:
        cmd += ["--sparse", "--sparse-version=1.0"]
    cmd.append("--anchored")
    cmd += [f"--exclude={pat}" for pat in anchored_patterns(spec.excludes)]
    cmd.append("--no-anchored")
    cmd.append("--exclude=.wh.*")  # would turn into whiteouts in a Docker layer
    for pat in spec.user_excludes:
        cmd.append(f"--exclude={pat}")
    if index_file is not None:
        cmd += ["--verbose", f"--index-file={index_file}"]
    if os.environ.get("VM2C_SLOW_TAR"):  # for demos and interruption tests: 1 s per record
        # a record is 1 MiB (--blocking-factor): a checkpoint every 10 records never
        # fired on the 6 MiB demo disk, whose tar then beat the tests that interrupt it
        cmd += ["--checkpoint=1", "--checkpoint-action=sleep=1"]
    cmd.append(".")
    return cmd


class TreeScan:
    """One pass of find beside tar (not before it: on 2 cores it hides behind the
    archive): the entry count feeds the progress, and guest files named .wh.*,
    which tar skips (Docker would read them as whiteouts), are reported."""

    def __init__(self, tree: Path, one_file_system: bool = False):
        self.entries = 0
        self.whiteouts: list[str] = []
        cmd = ["find", str(tree)] + (["-xdev"] if one_file_system else []) + ["-printf", "%P\\0"]
        self._proc = spawn(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                           preexec_fn=die_with_parent)
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self._proc.stdout is not None
        paths = self._proc.stdout.read().split(b"\0")
        self._proc.wait()
        self.whiteouts = ["/" + os.fsdecode(p) for p in paths if p and os.path.basename(p).startswith(b".wh.")]
        self.entries = len(paths) - 1

    def join(self) -> TreeScan:
        self._thread.join()
        return self

    def stop(self) -> None:
        """Before the tree is unmounted: find must not keep it busy."""
        if self._proc.poll() is None:
            self._proc.kill()
        self._thread.join(10)


class TarProcess:
    """tar running over a tree. Its verbose index (a name per file) goes to a regular
    file that is read at each progress tick: a pipe would wake a reader per file,
    which measured at +11 % of tar's time against +3 % for the file (benchmarks/)."""

    def __init__(self, spec: TarSpec, output: str, stdout=None, index_dir: str | None = None):
        fd, self.index_path = tempfile.mkstemp(prefix="vm2c-index-", dir=index_dir)  # 0600
        self._index = os.fdopen(fd, "rb", buffering=0)
        self.proc = spawn(tar_command(spec, output, self.index_path), stdout=stdout, stderr=subprocess.PIPE,
                          stdin=subprocess.DEVNULL, preexec_fn=die_with_parent)
        self.files = 0
        self.current = b""
        self._tail = b""
        self._stderr = b""
        self._err_reader = threading.Thread(target=self._read_err, daemon=True)
        self._err_reader.start()

    def update(self) -> None:
        """Count the names tar listed since the last call; remember the newest."""
        while chunk := self._index.read(1 << 20):
            self.files += chunk.count(b"\n")
            self._tail = (self._tail + chunk)[-4096:]
        end = self._tail.rfind(b"\n")
        if end > 0:
            self.current = self._tail[self._tail.rfind(b"\n", 0, end) + 1:end]

    def close_index(self) -> None:
        self._index.close()
        try:
            os.unlink(self.index_path)
        except FileNotFoundError:
            pass

    def _read_err(self) -> None:
        self._stderr = self.proc.stderr.read() if self.proc.stderr else b""

    def current_path(self) -> str:
        c = self.current
        return c.decode("utf-8", "replace").removeprefix(".") if c else ""

    def wait(self) -> None:
        rc = self.proc.wait()
        self.update()
        self.close_index()
        self._err_reader.join(5)
        if rc not in (0, 1):  # 1: a file changed while read (live system), still a complete archive
            err = self._stderr.decode(errors="replace")
            lines = [l for l in err.splitlines() if l.strip()]
            tail = lines[-1] if lines else f"exit status {rc}"
            if "No space left on device" in err:
                raise Vm2cError("output filesystem is full: img.tar could not be written (removed the partial file)")
            raise Vm2cError(f"tar failed: {tail}")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.close_index()


FilesTotal = Callable[[], int]


def _progress_loop(tar: TarProcess, done_bytes: Callable[[], int], total: int, files_total: FilesTotal,
                   on_progress: ProgressFn | None, interval: float, start: float) -> None:
    while tar.proc.poll() is None:
        if on_progress:
            tar.update()
            on_progress(Progress(done_bytes(), total, tar.files, files_total(), time.monotonic() - start,
                                 tar.current_path()))
        try:  # not sleep(): tar's end is noticed within ~50 ms, not up to a whole interval later
            tar.proc.wait(interval)
        except subprocess.TimeoutExpired:
            pass


def read_ahead(spec: TarSpec, position: Callable[[], int]) -> ReadAhead | None:
    """Files read ahead of tar (readahead.py); VM2C_READAHEAD=0 turns it off (benchmarks, tight memory)."""
    if os.environ.get("VM2C_READAHEAD") == "0":
        return None
    return ReadAhead(spec.tree, Filters.build(spec.excludes, spec.user_excludes), position, spec.one_file_system)


def write_tar(spec: TarSpec, dest: Path, *, total: int, files_total: FilesTotal = lambda: 0,
              index_dir: str | None = None, on_progress: ProgressFn | None = None,
              interval: float = 0.2) -> Progress:
    """tar straight to DEST (no copy through Python); progress from the file's size."""
    partial = dest.with_name(dest.name + ".partial")
    start = time.monotonic()
    tar = TarProcess(spec, str(partial), index_dir=index_dir)
    written = lambda: _size(partial)  # noqa: E731 - tar's position, for the read-ahead and the progress
    reader = read_ahead(spec, written)
    try:
        _progress_loop(tar, written, total, files_total, on_progress, interval, start)
        tar.wait()
        os.replace(partial, dest)
    except BaseException:
        tar.kill()
        partial.unlink(missing_ok=True)
        raise
    finally:
        if reader:
            reader.stop()
    final = Progress(dest.stat().st_size, dest.stat().st_size, tar.files, tar.files, time.monotonic() - start, "")
    if on_progress:
        on_progress(final)
    return final


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def stream_tar(spec: TarSpec, *, total: int, files_total: FilesTotal = lambda: 0, index_dir: str | None = None,
               on_progress: ProgressFn | None = None, interval: float = 0.2) -> Iterator[bytes]:
    """The tar as chunks (for `docker import` without a file on disk)."""
    start = time.monotonic()
    tar = TarProcess(spec, "-", stdout=subprocess.PIPE, index_dir=index_dir)
    done = 0
    last = 0.0
    reader = read_ahead(spec, lambda: done)
    try:
        out = tar.proc.stdout
        assert out is not None
        while True:
            chunk = out.read1(CHUNK)
            if not chunk:
                break
            done += len(chunk)
            now = time.monotonic()
            if on_progress and now - last >= interval:
                last = now
                tar.update()
                on_progress(Progress(done, total, tar.files, files_total(), now - start, tar.current_path()))
            yield chunk
        tar.wait()
    finally:
        if reader:
            reader.stop()
        tar.kill()
    final = Progress(done, done, tar.files, tar.files, time.monotonic() - start, "")
    if on_progress:
        on_progress(final)


def blank_machine_id(guest: GuestRoot) -> Path | None:
    """The guest's /etc/machine-id if it is a regular file (to be overlaid empty)."""
    try:
        host = Path(guest.resolve("/etc/machine-id", follow_last=False))
    except GuestPathError:
        return None
    return host if host.is_file() and not host.is_symlink() else None
