"""The assembled guest tree as the archive stage sees it, whichever engine assembled it: how many
bytes it holds, what a preset would leave out, and the tar written to a file or streamed.

`MountedTree` is the kernel route's (a directory of read-only mounts, GNU tar over it);
`ReaderTree` is the user-space engine's (its readers, our own tar writer). A conversion holds
one and never asks which.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from vm2c_tui.archive import gnutar, usertar
from vm2c_tui.archive.gnutar import Progress, ProgressFn, TarSpec
from vm2c_tui.archive.treescan import TreeScan
from vm2c_tui.host.session import Session
from vm2c_tui.inspect.guestpath import GuestRoot
from vm2c_tui.plan import presets
from vm2c_tui.read.userspace import prepare as reader_plan
from vm2c_tui.read.userspace.guest import ReaderRoot
from vm2c_tui.read.userspace.tree import UserspaceTree


class Tree(Protocol):
    engine: str  # kernel | userspace

    def savings(self, rules) -> int: ...
    def estimates(self, mountpoints: list[str]) -> dict[str, int]: ...
    def sizes(self, path: str) -> list[tuple[str, int, bool]]: ...
    def whiteouts(self) -> list[str]: ...
    def settle(self) -> None: ...
    def guest(self): ...  # the assembled root through the GuestRoot interface
    def write(self, dest: Path, *, total: int, on_progress: ProgressFn | None = None) -> Progress: ...
    def stream(self, *, total: int, on_progress: ProgressFn | None = None): ...


@dataclass
class MountedTree:
    path: Path  # the assembled directory
    spec: TarSpec
    scan: TreeScan
    session: Session
    engine: str = "kernel"

    def savings(self, rules) -> int:
        return presets.savings(GuestRoot(str(self.path)), rules)

    def estimates(self, mountpoints: list[str]) -> dict[str, int]:
        return presets.estimate_all(GuestRoot(str(self.path)), mountpoints)

    def sizes(self, path: str) -> list[tuple[str, int, bool]]:
        return presets.sizes(GuestRoot(str(self.path)), path)

    def whiteouts(self) -> list[str]:
        return self.scan.join().whiteouts

    def settle(self) -> None:
        self.scan.join()  # its whiteouts are reported after the tree is gone

    def guest(self) -> GuestRoot:
        return GuestRoot(str(self.path))

    def write(self, dest: Path, *, total: int, on_progress: ProgressFn | None = None) -> Progress:
        return gnutar.write_tar(self.spec, dest, total=total, scan=self.scan, on_progress=on_progress)

    def stream(self, *, total: int, on_progress: ProgressFn | None = None) -> gnutar.TarPipe:
        pipe = gnutar.TarPipe(self.spec, total=total, scan=self.scan, on_progress=on_progress)
        # whatever the consumer did (daemon gone midway), tar and the read-ahead stop before
        # the tree is unmounted
        self.session.callback(pipe.close)
        return pipe


@dataclass
class ReaderTree:
    tree: UserspaceTree
    engine: str = "userspace"

    def savings(self, rules) -> int:
        return reader_plan.savings(self.tree, rules)

    def estimates(self, mountpoints: list[str]) -> dict[str, int]:
        return reader_plan.estimate_all(self.tree, mountpoints)

    def sizes(self, path: str) -> list[tuple[str, int, bool]]:
        return reader_plan.sizes(self.tree, path)

    def whiteouts(self) -> list[str]:
        return self.tree.filters.whiteouts

    def guest(self):
        """The assembled guest (its mounts entered) through the GuestRoot interface."""
        return ReaderRoot(self.tree.mounts[0].reader, {m.mountpoint: m.reader for m in self.tree.mounts[1:]})

    def settle(self) -> None:
        pass

    def write(self, dest: Path, *, total: int, on_progress: ProgressFn | None = None) -> Progress:
        return usertar.write_tar(self.tree, dest, total=total, on_progress=on_progress)

    def stream(self, *, total: int, on_progress: ProgressFn | None = None):
        return usertar.stream_tar(self.tree, total=total, on_progress=on_progress)


@dataclass
class RemoteTree:
    """A running machine over SSH: GNU tar runs there (source/ssh.py quotes every word of its
    command line) and its stream comes back through ssh, into img.tar or straight into the
    daemon; nothing is written on the remote."""

    spec: TarSpec
    remote: object  # source.ssh.Remote
    session: Session
    engine: str = "remote"
    stop: list[str] = field(default_factory=list)  # services stopped while tar runs (--stop-services)

    def savings(self, rules) -> int:
        return 0  # sizes need a walk of the remote tree: not estimated

    def estimates(self, mountpoints: list[str]) -> dict[str, int]:
        return {}

    def sizes(self, path: str) -> list[tuple[str, int, bool]]:
        """PATH's entries with their sizes, asked of `du` there."""
        from vm2c_tui.inspect.services.remote import remote_sizes

        return remote_sizes(self.remote, path)

    def whiteouts(self) -> list[str]:
        return []

    def settle(self) -> None:
        pass

    def guest(self):
        """The files reading its services looks at, copied from there (inspect/services/remote.py)."""
        from vm2c_tui.inspect.services.remote import fetch_guest

        return fetch_guest(self.remote, self.session.tempdir("guest"))

    @contextlib.contextmanager
    def quiesced(self):
        """The services stopped for the block's time and started again after it, success or
        failure (in the state file first: `vm2c cleanup` names them if vm2c is killed). One by
        one, so those that stopped before another failed to are started again."""
        if not self.stop:
            yield
            return
        stopped: list[str] = []  # started again: those that did stop, the last first

        def start() -> None:
            if stopped:
                self.remote.services("start", stopped[::-1])

        with self.session.holding("services", self.remote.url, start, names=list(self.stop)):
            for name in self.stop:
                self.remote.services("stop", [name])
                stopped.append(name)
            yield

    def write(self, dest: Path, *, total: int, on_progress: ProgressFn | None = None) -> Progress:
        with self.quiesced():
            return gnutar.write_tar(self.spec, dest, total=total, on_progress=on_progress, remote=self.remote)

    def stream(self, *, total: int, on_progress: ProgressFn | None = None) -> gnutar.TarPipe:
        with contextlib.ExitStack() as held:  # given to the pipe once tar runs; released here if it fails to start
            held.enter_context(self.quiesced())
            pipe = gnutar.TarPipe(self.spec, total=total, on_progress=on_progress, remote=self.remote)
            pipe.after_close(held.pop_all().close)  # started again once tar has ended
        self.session.callback(pipe.close)
        return pipe
