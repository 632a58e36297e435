"""The daemon's new layer is written back while the import runs (services/writeback.py)."""

from __future__ import annotations

import io
import os
import tarfile
import threading
import time
from pathlib import Path

from conftest import docker_client, mounted_ext4, own_fs_dockerd

from vm2c_tui.image import daemon as image
from vm2c_tui.image import writeback

MiB = 1 << 20


def written(loop: str) -> int:
    """Bytes written to LOOP so far (sectors written, /sys/block/*/stat)."""
    return int(Path(f"/sys/block/{Path(loop).name}/stat").read_text().split()[6]) * 512


def wait_for(cond, seconds: float) -> bool:
    end = time.monotonic() + seconds
    while not cond():
        if time.monotonic() > end:
            return False
        time.sleep(0.05)
    return True


def flusher_running() -> bool:
    return any(t.name == writeback.THREAD_NAME for t in threading.enumerate())


def test_ahead_writes_back_what_waits_in_the_page_cache(tmp_path, no_leaks):
    mnt = tmp_path / "m"
    mnt.mkdir()
    with mounted_ext4(tmp_path / "fs.img", mnt, "128M") as loop:
        chunk = os.urandom(MiB)
        with open(mnt / "f", "wb") as f:
            for _ in range(32):
                f.write(chunk)
        before = written(loop)
        time.sleep(1)  # the premise: the kernel alone leaves 32 MiB dirty for longer than this
        assert written(loop) - before < 8 * MiB
        with writeback.ahead(str(mnt), every=0.2):
            assert wait_for(lambda: written(loop) - before >= 32 * MiB, 10)
        assert wait_for(lambda: not flusher_running(), 10)  # and it ends once left


def test_ahead_does_nothing_without_a_place_or_when_turned_off(tmp_path, monkeypatch):
    with writeback.ahead(None):
        assert not flusher_running()
    with writeback.ahead(str(tmp_path / "missing")):
        assert not flusher_running()
    monkeypatch.setenv("VM2C_EARLY_WRITEBACK", "0")
    with writeback.ahead(str(tmp_path)):
        assert not flusher_running()


def slow_tar(files: int, mib_each: int, pause: float):
    """A tar of random files, handed over 1 MiB at a time with PAUSE between pieces."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for i in range(files):
            info = tarfile.TarInfo(f"data/{i}")
            info.size = mib_each * MiB
            tar.addfile(info, io.BytesIO(os.urandom(info.size)))
    data = buf.getvalue()
    for at in range(0, len(data), MiB):
        yield data[at:at + MiB]
        time.sleep(pause)


def test_the_import_writes_the_layer_back_before_the_body_ends(tmp_path, monkeypatch, no_leaks):
    """A private daemon on its own ext4: at the moment the daemon has the last byte, most of
    the layer is on disk already; with the head start turned off, next to none of it is."""
    with own_fs_dockerd(tmp_path, "256M") as (host, loop):
        monkeypatch.setenv("DOCKER_HOST", host)
        for early, ref in (("1", "vm2c-test/wb:on"), ("0", "vm2c-test/wb:off")):
            monkeypatch.setenv("VM2C_EARLY_WRITEBACK", early)
            start, at_end = written(loop), []
            image.import_stream(slow_tar(4, 8, 0.08), ref, [],
                                after_body=lambda seen=at_end: seen.append(written(loop)))
            moved = at_end[0] - start
            if early == "1":
                assert moved >= 16 * MiB, moved  # at least half of the 32 MiB layer
            else:
                assert moved < 8 * MiB, moved
        c = docker_client()
        try:
            assert len(c.images.list(name="vm2c-test/wb")) == 2
        finally:
            c.close()
