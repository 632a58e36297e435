"""The user-space engine's tar: entries from the assembled tree, written as PAX
members to a file or streamed in chunks, with the kernel route's progress events."""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from vm2c_tui.archive import tarwriter
from vm2c_tui.archive.gnutar import Progress, ProgressFn
from vm2c_tui.errors import Vm2cError
from vm2c_tui.host.outfile import OutputFile
from vm2c_tui.read.userspace.fsbase import FsError, extent_chunks
from vm2c_tui.read.userspace.tree import UserspaceTree, walk

CHUNK = 1 << 20
MACHINE_ID = b"./etc/machine-id"


class _Counter:
    def __init__(self, total: int, on_progress: ProgressFn | None, interval: float):
        self.total, self.on_progress, self.interval = total, on_progress, interval
        self.bytes = self.files = 0
        self.current = ""
        self.start = self.last = time.monotonic()

    def tick(self, force: bool = False) -> None:
        now = time.monotonic()
        if self.on_progress and (force or now - self.last >= self.interval):
            self.last = now
            self.on_progress(Progress(self.bytes, self.total, self.files, 0, now - self.start, self.current))

    def final(self) -> Progress:
        p = Progress(self.bytes, self.bytes, self.files, self.files, time.monotonic() - self.start, "")
        if self.on_progress:
            self.on_progress(p)
        return p


def produce(tree: UserspaceTree, write, counter: _Counter) -> None:
    """Write the whole tar through WRITE(bytes). A parser failing on something it cannot
    read (a compression it lacks, a damaged structure) becomes one line naming the path."""
    try:
        _produce(tree, write, counter)
    except (Vm2cError, OSError, KeyboardInterrupt):
        raise
    except Exception as exc:
        where = counter.current or "/"
        raise FsError(f"{where}: the user-space engine cannot read it ({type(exc).__name__}: {exc}); "
                      f"as root, --engine kernel reads it through a read-only mount") from None


def _produce(tree: UserspaceTree, write, counter: _Counter) -> None:
    first_path: dict[tuple[int, int], bytes] = {}
    rate, start = tree.limit_rate, time.monotonic()

    def out(b: bytes) -> None:
        write(b)
        counter.bytes += len(b)
        if rate and (ahead := counter.bytes / rate - (time.monotonic() - start)) > 0.05:
            time.sleep(ahead)  # --limit-rate: no faster than RATE bytes a second

    for e in walk(tree.mounts, tree.filters):
        meta = e.meta
        if meta.kind in ("socket", "other"):
            continue  # GNU tar skips sockets too
        counter.files += 1
        counter.current = e.path[1:].decode("utf-8", "replace") or "/"
        blank = tree.sanitize and e.path == MACHINE_ID and meta.kind == "file" and meta.size > 0
        xattrs = {} if blank else e.reader.xattrs(e.node)
        if blank:
            meta.size = 0
        key = (id(e.reader), meta.ino)
        # by inode, whatever the link count says: a crafted count of 1 on an inode reached by
        # many names would otherwise have its data written once per name (FAT: 0 is 'no data')
        if meta.kind != "dir" and meta.ino:
            if key in first_path:
                out(tarwriter.member(e.name, meta, xattrs, hardlink_to=first_path[key]))
                counter.tick()
                continue
            first_path[key] = e.name
        _member(tree, e, meta, xattrs, out, counter)
        counter.tick()
    out(tarwriter.END)


def _member(tree: UserspaceTree, e, meta, xattrs, out, counter: _Counter) -> None:
    """One entry's header and, for a file, its data: as sparse regions where asked and holey."""
    holes = _holes(tree, e, meta)
    if holes is not None:
        regions, pieces = holes
        smap = tarwriter.sparse_map(regions, meta.size)
        out(tarwriter.member(e.name, meta, xattrs, sparse=smap) + smap)
        for chunk in extent_chunks(getattr(e.reader, "disk", tree.disk), pieces, counter.current):
            out(chunk)
            counter.tick()
        out(tarwriter.padding(len(smap) + sum(n for _, n in pieces)))
    elif meta.kind == "file" and meta.size:
        out(tarwriter.member(e.name, meta, xattrs))
        done = 0
        for chunk in e.reader.chunks(e.node):
            out(chunk)
            done += len(chunk)
            counter.tick()
        if done != meta.size:
            raise FsError(f"{counter.current}: read {done} bytes of {meta.size}")
        out(tarwriter.padding(meta.size))
    else:
        out(tarwriter.member(e.name, meta, xattrs))


def _holes(tree: UserspaceTree, e, meta):
    """(data regions in the file, their byte ranges in the disk) when a sparse member is
    wanted and the file has holes; None otherwise."""
    if not tree.sparse or meta.kind != "file" or not meta.size or not hasattr(e.reader, "extents"):
        return None
    extents = e.reader.extents(e.node)  # they cover the whole file, holes as None
    if all(at is not None for at, _ in extents):
        return None
    regions: list[tuple[int, int]] = []
    pieces: list[tuple[int, int]] = []
    pos = 0
    for at, n in extents:
        if at is not None:
            if regions and regions[-1][0] + regions[-1][1] == pos:
                regions[-1] = (regions[-1][0], regions[-1][1] + n)
            else:
                regions.append((pos, n))
            pieces.append((at, n))
        pos += n
    return regions, pieces


def write_tar(tree: UserspaceTree, dest: Path, *, total: int, on_progress: ProgressFn | None = None,
              interval: float = 0.2) -> Progress:
    counter = _Counter(total, on_progress, interval)
    with OutputFile(dest) as out:  # DEST.partial: no symlink followed, 0600 (outfile.py)
        try:
            with os.fdopen(os.dup(out.fd), "wb", buffering=CHUNK) as f:
                produce(tree, f.write, counter)
            out.commit()
        except OSError as exc:
            if exc.errno == 28:
                raise Vm2cError("output filesystem is full: img.tar could not be written (removed the partial "
                                "file)") from None
            raise Vm2cError(f"{dest}: {exc.strerror}") from None
    return counter.final()


class _Stop(Exception):
    pass


class _Producer:
    """The tar written by a thread into a bounded queue in ~1 MiB chunks: None ends it, an
    exception is handed over to be raised in the consumer, `stop` ends the thread early."""

    def __init__(self, tree: UserspaceTree, counter: _Counter):
        self.q: queue.Queue = queue.Queue(maxsize=16)
        self.stop = threading.Event()
        self.buf = bytearray()
        self.thread = threading.Thread(target=self._run, args=(tree, counter), name="vm2c-userspace-tar",
                                       daemon=True)

    def _put(self, item) -> None:
        while not self.stop.is_set():
            try:
                self.q.put(item, timeout=0.2)
                return
            except queue.Full:
                continue
        raise _Stop

    def _write(self, b: bytes) -> None:
        self.buf.extend(b)
        if len(self.buf) >= CHUNK:
            self._put(bytes(self.buf))
            self.buf.clear()

    def _run(self, tree: UserspaceTree, counter: _Counter) -> None:
        try:
            produce(tree, self._write, counter)
            if self.buf:
                self._put(bytes(self.buf))
            self._put(None)
        except _Stop:
            pass
        except BaseException as exc:  # handed to the consumer, raised there
            try:
                self._put(exc)
            except _Stop:
                pass


def stream_tar(tree: UserspaceTree, *, total: int, on_progress: ProgressFn | None = None,
               interval: float = 0.2) -> Iterator[bytes]:
    """The tar in ~1 MiB chunks, produced by a thread so reading the disk and
    sending to Docker overlap."""
    counter = _Counter(total, on_progress, interval)
    producer = _Producer(tree, counter)
    producer.thread.start()
    try:
        while True:
            item = producer.q.get()
            if item is None:
                break
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        producer.stop.set()
        producer.thread.join(10)
    counter.final()
