"""A private Docker daemon on its own socket and data root (tests, the demo).

Debian's dockerd, started detached; stopped by its own pid, and the mounts it
leaves (the netns nsfs, overlay layers) are unmounted so nothing stays behind.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import psutil

from vm2c_tui.errors import Vm2cError
from vm2c_tui.host.run import shell_line, which
from vm2c_tui.host.session import is_mounted


def daemon_answers(host: str | None = None, timeout: float = 3) -> bool:
    try:
        import docker

        c = docker.DockerClient(base_url=host, timeout=timeout) if host else docker.from_env(timeout=timeout)
        c.ping()
        c.close()
        return True
    except Exception:  # any failure means: no usable daemon
        return False


CONTAINERD_LONGEST = "/exec/containerd/containerd-debug.sock"


class PrivateDockerd:
    def __init__(self, base: Path | None = None, storage_driver: str = "overlay2"):
        # short path: the socket path must fit in 108 bytes
        # absolute: containerd cannot dial a relative unix:// address; symlinks resolved: the
        # mounts dockerd leaves are found in /proc/self/mountinfo by this path
        self.base = Path(base or tempfile.mkdtemp(prefix="vm2c-dockerd-", dir="/tmp")).resolve()
        self.storage_driver = storage_driver
        self.proc: subprocess.Popen | None = None

    @property
    def host(self) -> str:
        return f"unix://{self.base}/docker.sock"

    def command(self) -> list[str]:
        exe = which("dockerd")
        if not exe:
            raise Vm2cError("dockerd not found: install docker.io (scripts/setup does)")
        return [exe, "--data-root", f"{self.base}/data", "--exec-root", f"{self.base}/exec",
                "--pidfile", f"{self.base}/dockerd.pid", "-H", self.host,
                f"--storage-driver={self.storage_driver}", "--iptables=false", "--ip6tables=false",
                "--bridge=none"]

    def start(self, timeout: float = 60) -> str:
        # containerd refuses socket paths over 104 bytes, and its debug socket is the longest;
        # without this check dockerd waits 30 s for a containerd that never listened
        if len(os.fsencode(str(self.base) + CONTAINERD_LONGEST)) > 104:
            raise Vm2cError(f"{self.base}: too long a directory for the daemon's sockets (containerd allows 104 bytes); take a shorter one")
        self.base.mkdir(mode=0o700, parents=True, exist_ok=True)
        with open(self.base / "dockerd.log", "ab") as log:  # dockerd keeps its own copy
            self.proc = subprocess.Popen(self.command(), stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                                         start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                tail = (self.base / "dockerd.log").read_text(errors="replace").strip().splitlines()[-3:]
                self._unmount()  # a daemon that gave up may have mounted its data root already
                if self.storage_driver != "vfs":  # overlay2 not offered here: fall back
                    self.storage_driver = "vfs"
                    return self.start(timeout)
                raise Vm2cError("dockerd exited: " + " | ".join(tail))
            if daemon_answers(self.host, timeout=1):
                return self.host
            time.sleep(0.2)
        self.stop()
        raise Vm2cError(f"dockerd did not answer within {timeout:.0f} s ({shell_line(self.command())})")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            # containerd runs in a session of its own: dockerd stops it, but does not wait for it
            try:
                helpers = psutil.Process(self.proc.pid).children(recursive=True)
            except psutil.Error:
                helpers = []
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
            _, alive = psutil.wait_procs(helpers, timeout=10)
            for p in alive:
                p.kill()
            psutil.wait_procs(alive, timeout=5)
        self._unmount()
        shutil.rmtree(self.base, ignore_errors=True)

    def _unmount(self) -> None:
        """dockerd leaves its netns nsfs (and sometimes layer mounts) mounted."""
        with open("/proc/self/mountinfo") as f:
            mps = [line.split()[4] for line in f if f" {self.base}/" in line or line.split()[4].startswith(str(self.base))]
        for mp in sorted(mps, key=len, reverse=True):
            if is_mounted(mp):
                subprocess.run(["umount", "-l", mp], capture_output=True)

    def __enter__(self) -> PrivateDockerd:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
