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

import fcntl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from vm2c_tui.archive.readahead import ReadAhead
from vm2c_tui.archive.treescan import TarCursor, TreeScan
from vm2c_tui.errors import Vm2cError
from vm2c_tui.host import tuning
from vm2c_tui.host.outfile import OutputFile
from vm2c_tui.host.run import die_with_parent, signals_held, spawn
from vm2c_tui.inspect.guestpath import GuestPathError, GuestRoot
from vm2c_tui.plan.excludes import Filters, anchored_patterns
from vm2c_tui.plan.presets import Rule

CHUNK = 1 << 20  # also tar's record (--blocking-factor=2048)
COMPRESS = {"zstd": "--zstd", "gzip": "--gzip"}  # --compress: tar's flag there, `NAME -dc` here
SAMPLE = 0.02  # where tar is, looked up 50 times a second (~0.1 ms each): small files are open briefly


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
    limit_rate: int = 0  # bytes/s at most (--limit-rate), in whole MiB records; 0: as fast as it goes
    compress: str = ""  # zstd | gzip: a remote tar's stream compressed on the wire, unpacked here


def tar_command(spec: TarSpec, output: str = "-") -> list[str]:
    """The one place where tar's flags are decided."""
    # No --selinux (security.selinux travels with the other xattrs) and no --sort=name:
    # each costs a pass per file, measured at 20-30 % of the archive's time (benchmarks/).
    # --force-local: an output name with a colon is a file, never a remote host's
    cmd = ["tar", "--create", f"--file={output}", "--force-local", f"--directory={spec.tree}", "--format=pax",
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
    if spec.compress:
        cmd.append(COMPRESS[spec.compress])
    if spec.limit_rate:  # a second's pause after each RATE's worth of 1 MiB records: at most RATE/s
        cmd += [f"--checkpoint={max(spec.limit_rate >> 20, 1)}", "--checkpoint-action=sleep=1"]
    cmd.append(".")
    return cmd


def widen_pipe(fd: int, size: int = CHUNK) -> None:
    """A pipe holds 64 KiB by default, so each of tar's 1 MiB writes woke the reader 16 times.
    At one record, tar's side of `vm2c convert` used 0.5-0.9 s less system time on the
    benchmark disk (3 paired runs; the wall time was within the noise). Best effort:
    pipe-max-size may be lower."""
    try:
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, size)
    except OSError:
        pass


class ListingCursor:
    """Where a remote tar is, from its --verbose listing: one line per entry it archived."""

    scan = None

    def __init__(self) -> None:
        self.done, self.current = 0, ""

    def saw(self, line: bytes) -> None:
        self.done += 1
        self.current = line[1:].rstrip(b"\n").decode("utf-8", "replace") or "/"

    def poll(self) -> None:
        pass

    def finish(self) -> None:
        pass


class TarProcess:
    """tar running over a tree; where it is comes from a TarCursor (treescan.py), so
    tar is not asked for a line per file (--verbose cost it ~15 %, benchmarks/)."""

    def __init__(self, spec: TarSpec, output: str, scan: TreeScan | None, stdout=None, remote=None):
        """REMOTE (source/ssh.Remote): tar runs there, over ssh, and says where it is on stderr
        (--verbose: its open files are on another machine)."""
        cmd = tar_command(spec, output)
        if remote is not None:
            cmd = remote.argv([cmd[0], "--verbose", *cmd[1:]])
        self.remote, self.unpack = remote, None
        wire = subprocess.PIPE if spec.compress else stdout
        self.proc = spawn(cmd, stdout=wire, stderr=subprocess.PIPE,
                          stdin=subprocess.DEVNULL, preexec_fn=die_with_parent)
        if spec.compress:  # the stream arrives compressed: unpacked here, on its way to STDOUT
            self.unpack = spawn([spec.compress, "-dc"], stdin=self.proc.stdout, stdout=stdout,
                                stderr=subprocess.PIPE, preexec_fn=die_with_parent)
            self.proc.stdout.close()  # the unpacker holds it now
        if stdout == subprocess.PIPE:
            widen_pipe(self.stdout.fileno())
        self.cursor = ListingCursor() if remote is not None else TarCursor(self.proc.pid, spec.tree, scan)
        self._sampled = self._reported = float("-inf")
        self._stderr = b""
        self._err_reader = threading.Thread(target=self._read_err, daemon=True)
        self._err_reader.start()

    @property
    def stdout(self):
        """The tar stream (unpacked when it came compressed)."""
        return (self.unpack or self.proc).stdout

    def _read_err(self) -> None:
        if not isinstance(self.cursor, ListingCursor):
            self._stderr = self.proc.stderr.read() if self.proc.stderr else b""
            return
        other: list[bytes] = []  # tar's and ssh's messages among the listing
        for line in self.proc.stderr:
            if line.startswith(b"./"):
                self.cursor.saw(line)
            else:
                other = [*other[-40:], line]
        self._stderr = b"".join(other)

    def tick(self, done_bytes: Callable[[], int], total: int, start: float, on_progress: ProgressFn,
             interval: float) -> None:
        """Where tar is, sampled every SAMPLE (small files are open briefly); an event every INTERVAL."""
        now = time.monotonic()
        if now - self._sampled < SAMPLE:
            return
        self._sampled = now
        self.cursor.poll()
        if now - self._reported >= interval:
            self._reported = now
            on_progress(self.progress(done_bytes(), total, start))

    def progress(self, done: int, total: int, start: float) -> Progress:
        c = self.cursor
        files_total = c.scan.entries if c.scan else 0
        return Progress(done, total, c.done, files_total, time.monotonic() - start, c.current)

    def wait(self) -> None:
        rc = self.proc.wait()
        self._err_reader.join(5)
        self._wait_unpack(rc)
        if rc == 255 and self.remote is not None:  # ssh itself: the connection dropped, or never was
            raise self.remote.explain(self._stderr.decode(errors="replace"))
        if rc not in (0, 1) and self.remote is not None and self.remote.sudo:
            raise self.remote.failed("tar", self._stderr.decode(errors="replace"), rc)
        if rc not in (0, 1):  # 1: a file changed while read (live system), still a complete archive
            err = self._stderr.decode(errors="replace")
            lines = [l for l in err.splitlines() if l.strip() and "Exiting with failure status" not in l]
            tail = lines[-1] if lines else f"exit status {rc}"  # the error itself, not tar's summary of it
            if "No space left on device" in err:
                raise Vm2cError("output filesystem is full: img.tar could not be written (removed the partial file)")
            raise Vm2cError(f"tar failed: {tail}")
        self.cursor.finish()

    def _wait_unpack(self, rc: int) -> None:
        if self.unpack is None:
            return
        err = self.unpack.communicate()[1].decode(errors="replace").strip().splitlines()
        if self.unpack.returncode != 0 and rc in (0, 1):  # tar's own failure is the one to tell
            raise Vm2cError(f"{self.unpack.args[0]} -d failed on the stream from {self.remote.url}: "
                            f"{err[-1] if err else f'exit status {self.unpack.returncode}'}")

    def kill(self) -> None:
        for p in (self.proc, self.unpack):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()


def _progress_loop(tar: TarProcess, done_bytes: Callable[[], int], total: int,
                   on_progress: ProgressFn | None, interval: float, start: float) -> None:
    while tar.proc.poll() is None:
        if on_progress:
            tar.tick(done_bytes, total, start, on_progress, interval)
        try:  # not sleep(): tar's end is noticed at once, not up to a whole interval later
            tar.proc.wait(SAMPLE if on_progress else interval)
        except subprocess.TimeoutExpired:
            pass


def read_ahead(spec: TarSpec, position: Callable[[], int]) -> ReadAhead | None:
    """Files read ahead of tar (readahead.py); VM2C_READAHEAD=0 turns it off (benchmarks, tight memory)."""
    if not tuning.readahead():
        return None
    return ReadAhead(spec.tree, Filters.build(spec.excludes, spec.user_excludes), position, spec.one_file_system)


def write_tar(spec: TarSpec, dest: Path, *, total: int, scan: TreeScan | None = None,
              on_progress: ProgressFn | None = None, interval: float = 0.2, remote=None) -> Progress:
    """tar straight to DEST (no copy through Python): its stdout is DEST.partial, made by
    outfile.OutputFile (no symlink followed, 0600); progress from the file's size."""
    start = time.monotonic()
    tar = reader = None
    with OutputFile(dest) as out:
        try:
            with signals_held():  # a Ctrl-C now would come between starting tar or find and holding them
                tar = TarProcess(spec, "-", scan, stdout=out.fd, remote=remote)
                reader = read_ahead(spec, out.size) if remote is None else None  # tar's position
            _progress_loop(tar, out.size, total, on_progress, interval, start)
            tar.wait()
            size = out.size()
            out.commit()
        except BaseException:
            if tar:
                tar.kill()
            raise
        finally:
            if reader:
                reader.stop()
    final = tar.progress(size, size, start)
    if on_progress:
        on_progress(final)
    return final


class TarPipe:
    """tar's output for `docker import`, with no file on disk. A consumer either drains the pipe
    itself (fileno(); it reports what it moved with moved() and calls finish() at the end:
    the image service splices it into the daemon's socket, upload.py) or iterates it for chunks.
    close() always, once done with it: it stops tar and the read-ahead."""

    def __init__(self, spec: TarSpec, *, total: int, scan: TreeScan | None = None,
                 on_progress: ProgressFn | None = None, interval: float = 0.2, remote=None):
        self.total, self.on_progress, self.interval = total, on_progress, interval
        self.done = 0
        self.start = time.monotonic()
        self.tar: TarProcess | None = None
        self.reader: ReadAhead | None = None
        self._after: list[Callable[[], None]] = []
        try:
            with signals_held():
                self.tar = TarProcess(spec, "-", scan, stdout=subprocess.PIPE, remote=remote)
                self.reader = read_ahead(spec, self._streamed) if remote is None else None
        except BaseException:
            self.close()
            raise

    def _streamed(self) -> int:  # tar's position, for the read-ahead and the progress
        return self.done

    def fileno(self) -> int:
        return self.tar.stdout.fileno()

    def moved(self, n: int) -> None:
        self.done += n
        if self.on_progress:
            self.tar.tick(self._streamed, self.total, self.start, self.on_progress, self.interval)

    def finish(self) -> None:
        """The pipe is drained: tar's status checked (a failure raises), the final event."""
        self.tar.wait()
        self.close()
        if self.on_progress:
            self.on_progress(self.tar.progress(self.done, self.done, self.start))

    def after_close(self, fn: Callable[[], None]) -> None:
        """FN once, when tar has ended or been stopped (remote services started again)."""
        self._after.append(fn)

    def close(self) -> None:
        if self.reader:
            self.reader.stop()
            self.reader = None
        if self.tar:
            self.tar.kill()
        while self._after:
            self._after.pop()()

    def __iter__(self) -> Iterator[bytes]:
        out = self.tar.stdout
        while chunk := out.read1(CHUNK):
            self.moved(len(chunk))
            yield chunk
        self.finish()


def blank_machine_id(guest: GuestRoot) -> Path | None:
    """The guest's /etc/machine-id if it is a regular file (to be overlaid empty)."""
    try:
        host = Path(guest.resolve("/etc/machine-id", follow_last=False))
    except GuestPathError:
        return None
    return host if host.is_file() and not host.is_symlink() else None
