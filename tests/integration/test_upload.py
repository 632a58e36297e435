"""How the tar reaches the daemon (services/upload.py): spliced from tar's pipe, sent from a
file, or through the SDK; over unix:// and tcp://. Every way must give the same layer."""

from __future__ import annotations

import io
import os
import socket
import subprocess
import tarfile
import threading
import time

import pytest
from conftest import VM2C, as_nobody, docker_client, vm2c

from vm2c_tui.errors import Vm2cError
from vm2c_tui.image import daemon as image
from vm2c_tui.image import upload

SLOW_TAR = "--checkpoint-action=sleep=1"  # --limit-rate's mark on tar's command line


def layers(ref: str) -> list[str]:
    c = docker_client()
    try:
        return c.images.get(ref).attrs["RootFS"]["Layers"]
    finally:
        c.close()


class TcpToUnix:
    """127.0.0.1:PORT forwarded to the test daemon's socket: a daemon reached over tcp://
    without TLS (dockerd itself warns against listening so)."""

    def __init__(self, unix_path: str):
        self.unix_path = unix_path
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.socket(socket.AF_UNIX)
            upstream.connect(self.unix_path)
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(1 << 16):
                dst.sendall(data)
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def close(self) -> None:
        self.listener.close()


def test_every_way_of_sending_gives_the_same_layer(disks, dockerd, tmp_path, no_leaks):
    """The same disk through tar's pipe spliced into the socket (the default), through the
    SDK's requests, over tcp://, and from img.tar with sendfile (`vm2c build --method import`):
    one layer, the same digest, so not one byte differs."""
    src = disks.get("full")
    args = ["--no-sanitize", "--no-smoke"]
    vm2c("convert", src, "--tag", "vm2c-test/up:splice", *args, check=True)
    vm2c("convert", src, "--tag", "vm2c-test/up:sdk", *args, check=True, env={**os.environ, "VM2C_UPLOAD": "sdk"})
    tcp = TcpToUnix(os.environ["DOCKER_HOST"].removeprefix("unix://"))
    try:
        vm2c("convert", src, "--tag", "vm2c-test/up:tcp", *args, check=True,
             env={**os.environ, "DOCKER_HOST": f"tcp://127.0.0.1:{tcp.port}"})
    finally:
        tcp.close()
    vm2c("archive", src, "-o", tmp_path / "out", "--no-sanitize", check=True)
    vm2c("build", tmp_path / "out", "--method", "import", "--tag", "vm2c-test/up:file", check=True)
    splice = layers("vm2c-test/up:splice")
    assert len(splice) == 1
    for way in ("sdk", "tcp", "file"):
        assert layers(f"vm2c-test/up:{way}") == splice, way


def test_a_tar_that_fails_midway_leaves_no_image(disks, dockerd, no_leaks):
    """tar killed after a few records: the body is never ended, so the daemon drops what it
    got; vm2c says tar failed, in one line."""
    c = docker_client()
    before = {i.id for i in c.images.list(all=True)}
    proc = subprocess.Popen([*VM2C, "convert", disks.get("full"), "--tag", "vm2c-test/tarfail:1", "--limit-rate", "1M"],
                            stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    for _ in range(200):
        if subprocess.run(["pgrep", "-f", "--", SLOW_TAR], capture_output=True).returncode == 0:
            break
        time.sleep(0.05)
    else:
        raise AssertionError("tar never started")
    time.sleep(2.5)  # two records sent (one per second)
    subprocess.run(["pkill", "-KILL", "-f", "--", SLOW_TAR], check=True)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2 and "Traceback" not in err, err
    assert err.strip().splitlines()[-1].startswith("vm2c: tar failed"), err
    time.sleep(0.5)
    assert {i.id for i in c.images.list(all=True)} == before
    c.close()


class PipeThenFailure:
    """A complete, valid tar in a pipe whose producer then reports failure (as a tar that
    wrote everything and exited 2): the case where only the order of checking and ending
    the body keeps a bad image out."""

    def __init__(self, data: bytes):
        self.r, w = os.pipe()
        self.writer = threading.Thread(target=lambda: (os.write(w, data), os.close(w)), daemon=True)
        self.writer.start()
        self.done = 0

    def fileno(self) -> int:
        return self.r

    def moved(self, n: int) -> None:
        self.done += n

    def finish(self) -> None:
        raise Vm2cError("tar failed: a file vanished")


def test_the_body_is_ended_only_after_tar_succeeded(dockerd):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        info = tarfile.TarInfo("hello")
        info.size = 5
        tf.addfile(info, io.BytesIO(b"hello"))
    c = docker_client()
    before = {i.id for i in c.images.list(all=True)}
    src = PipeThenFailure(buf.getvalue())
    with pytest.raises(Vm2cError, match="a file vanished"):
        image.import_stream(src, "vm2c-test/ended:1", [])
    assert src.done == len(buf.getvalue())
    time.sleep(0.5)
    assert {i.id for i in c.images.list(all=True)} == before
    c.close()
    os.close(src.r)


def test_the_tree_is_unmounted_while_the_daemon_commits(disks, dockerd, no_leaks):
    """tar is done once the body is sent: the mounts go while the daemon still commits the
    layer (~0.4 s each for a 1.3 GB tree), not one after the other."""
    err = vm2c("--debug", "convert", disks.get("full"), "--tag", "vm2c-test/overlap:1", "--no-smoke",
               check=True).stderr.splitlines()
    sent = next(i for i, l in enumerate(err) if "body sent" in l)
    answered = next(i for i, l in enumerate(err) if "vm2c.upload: answered" in l)
    unmounts = [i for i, l in enumerate(err) if "run: umount " in l and "vm2c-tree-" in l]
    assert unmounts and all(sent < i < answered for i in unmounts), "\n".join(err[sent:answered + 1])


def test_a_request_the_daemon_refuses_is_reported_in_its_words(dockerd, tmp_path):
    """An invalid change is refused before the body is read: the daemon answers and closes
    while vm2c is still sending, and what it said is the error, not the broken pipe."""
    big = tmp_path / "zeros.tar"
    with open(big, "wb") as f:
        f.truncate(64 << 20)
    for body in (big, iter([bytes(1 << 20)] * 64)):
        with pytest.raises(Vm2cError, match="the Docker daemon reported: foo is not a valid change command"):
            image.import_stream(body, "vm2c-test/refused:1", ["FOO bar"])






def test_without_root_the_socket_gets_what_the_system_allows():
    """SO_SNDBUFFORCE needs CAP_NET_ADMIN: as nobody, SO_SNDBUF up to net.core.wmem_max
    (the kernel doubles what it is given, for its own bookkeeping)."""
    cap = int(open("/proc/sys/net/core/wmem_max").read())
    a, b = socket.socketpair()

    def room() -> str:
        upload.queue_room(a)
        return str(a.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF))

    got = as_nobody(room)
    a.close()
    b.close()
    assert got == str(2 * min(upload.QUEUE, cap))
