"""Session fixtures: real disks built once (cached by the builder's content), leak checks."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from diskbuilder import build as b
from diskbuilder import builder_key
from diskbuilder.recipes import build as build_recipe

REPO = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("VM2C_FIXTURE_CACHE", REPO / ".cache" / "fixtures"))
VM2C = [sys.executable, "-m", "vm2c_tui"]


class Disks:
    """Fixture disks by (recipe, format), built on first use, kept for later sessions."""

    FORMATS = {
        "raw": None,
        "qcow2": ("qcow2", "-c"),
        "vdi": ("vdi",),
        "vmdk": ("vmdk",),
        "vmdk-stream": ("vmdk", "-o", "subformat=streamOptimized"),
        "vmdk-flat": ("vmdk", "-o", "subformat=twoGbMaxExtentFlat"),
        "vhd": ("vpc",),
        "vhdx": ("vhdx",),
    }

    def __init__(self, root: Path):
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def raw(self, name: str) -> Path:
        path = self.root / f"{name}.raw"
        if not path.exists():
            tmp = self.root / f".tmp-{name}"
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.rmtree(self.root / f"{name}.trees", ignore_errors=True)
            tmp.mkdir()
            built = build_recipe(name, tmp, keep_trees=True)
            os.replace(tmp / f"{name}.trees", self.root / f"{name}.trees")
            os.replace(built, path)
            shutil.rmtree(tmp)
        return path

    def trees(self, name: str) -> Path:
        self.raw(name)
        return self.root / f"{name}.trees"

    def get(self, name: str, fmt: str = "raw") -> Path:
        raw = self.raw(name)
        if fmt == "raw":
            return raw
        if fmt == "qcow2-backing":
            base = self.get(name, "qcow2")
            top = self.root / f"{name}-overlay.qcow2"
            if not top.exists():
                b.overlay(base, "qcow2", top)
            return top
        out_fmt, *opts = self.FORMATS[fmt]
        ext = {"vpc": "vhd"}.get(out_fmt, out_fmt)
        dest = self.root / f"{name}.{fmt}.{ext}" if fmt != out_fmt else self.root / f"{name}.{ext}"
        if fmt == "vmdk-flat":
            d = self.root / f"{name}-flat"
            d.mkdir(exist_ok=True)
            dest = d / f"{name}.vmdk"
        if not dest.exists():
            if fmt == "vmdk-flat":  # the descriptor names its extents: write them in place
                b.convert(raw, out_fmt, dest, *opts)
            else:
                tmp = dest.with_name(".tmp-" + dest.name)
                b.convert(raw, out_fmt, tmp, *opts)
                os.replace(tmp, dest)
        return dest


@pytest.fixture(scope="session")
def disks() -> Disks:
    if os.geteuid() != 0:
        pytest.fail("the test suite needs root (loop devices, mounts, LVM on loop devices)")
    return Disks(CACHE / builder_key())


def _state() -> dict:
    loops = subprocess.run(["losetup", "-a"], capture_output=True, text=True).stdout
    mounts = [l for l in Path("/proc/self/mountinfo").read_text().splitlines() if "vm2c-" in l]
    procs = subprocess.run(["pgrep", "-a", "qemu-storage"], capture_output=True, text=True).stdout
    temps = sorted(p.name for p in Path("/tmp").glob("vm2c-*")
                   if not p.name.startswith(("vm2c-build", "vm2c-test-", "vm2c-dockerd-")))
    return {"loops": sorted(loops.splitlines()), "mounts": mounts, "qemu": procs.splitlines(), "temps": temps}


@pytest.fixture
def no_leaks():
    """Asserts a test left no loop device, mount, qemu process or temp dir behind."""
    before = _state()
    yield
    after = _state()
    for key in before:
        new = sorted(set(after[key]) - set(before[key]))
        assert not new, f"left behind ({key}): {new}"


def sigint_default() -> None:
    """preexec_fn for a vm2c the test will Ctrl-C: a shell that starts the suite in the
    background leaves SIGINT ignored, children inherit that, and Python then raises no
    KeyboardInterrupt at all (vm2c rightly keeps an ignored SIGINT ignored)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def fingerprint(path) -> tuple[str, int]:
    """sha256 and mtime of a source image: vm2c must change neither."""
    with open(path, "rb") as f:
        digest = hashlib.file_digest(f, "sha256").hexdigest()
    return digest, os.stat(path).st_mtime_ns


def vm2c(*args: str, check: bool = False, **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run([*VM2C, *map(str, args)], capture_output=True, text=True, **kw)
    if check and proc.returncode != 0:
        raise AssertionError(f"vm2c {' '.join(map(str, args))} failed: {proc.stderr}")
    return proc


@pytest.fixture(scope="session")
def dockerd():
    """Debian's dockerd on a private socket and data root, for the whole session."""
    from vm2c_tui.image.dockerd import PrivateDockerd

    daemon = PrivateDockerd()
    host = daemon.start()
    old = os.environ.get("DOCKER_HOST")
    os.environ["DOCKER_HOST"] = host
    yield host
    if old is None:
        os.environ.pop("DOCKER_HOST", None)
    else:
        os.environ["DOCKER_HOST"] = old
    daemon.stop()


@contextlib.contextmanager
def mounted_ext4(img: Path, mnt: str | Path, size: str = "64M", *mkfs_opts: str):
    """A fresh ext4 in IMG on a loop device, mounted at MNT; yields the loop device."""
    subprocess.run(["truncate", "-s", size, img], check=True)
    subprocess.run(["mkfs.ext4", "-q", "-F", *mkfs_opts, img], check=True)
    loop = subprocess.run(["losetup", "-f", "--show", img], check=True, capture_output=True, text=True).stdout.strip()
    try:
        subprocess.run(["mount", loop, mnt], check=True)
        try:
            yield loop
        finally:
            subprocess.run(["umount", mnt], check=True)
    finally:
        subprocess.run(["losetup", "-d", loop], check=True)


def data_root(host: str) -> str:
    """A PrivateDockerd's data root, from its socket's address."""
    return host.removeprefix("unix://").rsplit("/", 1)[0] + "/data"


@contextlib.contextmanager
def own_fs_dockerd(tmp_path: Path, size: str = "192M"):
    """A private dockerd whose data root is its own fresh ext4 of SIZE; yields (host, loop device)."""
    from vm2c_tui.image.dockerd import PrivateDockerd

    base = tempfile.mkdtemp(prefix="vm2c-test-dr", dir="/tmp")  # short: the socket path must fit
    try:
        with mounted_ext4(tmp_path / "dataroot.img", base, size) as loop:
            daemon = PrivateDockerd(base=Path(base) / "d")  # its stop() unmounts everything under its base
            try:
                yield daemon.start(), loop
            finally:
                daemon.stop()
    finally:
        os.rmdir(base)


@contextlib.contextmanager
def cramped_dockerd(tmp_path: Path, free_mib: int = 8):
    """A private dockerd whose data root is its own small filesystem with FREE_MIB left; yields its host."""
    with own_fs_dockerd(tmp_path) as (host, _loop):
        base = data_root(host).rsplit("/", 2)[0]
        st = os.statvfs(base)
        subprocess.run(["fallocate", "-l", str(st.f_bavail * st.f_frsize - (free_mib << 20)),
                        f"{base}/filler"], check=True)
        yield host


def docker_client():
    import docker

    return docker.from_env(timeout=600)


def load_and_run(archive: Path, tag: str) -> bytes:
    """`docker load -i ARCHIVE` into the test's daemon, which must restore TAG; then TAG's
    /etc/os-release, read by a container with no network."""
    c = docker_client()
    with open(archive, "rb") as f:
        loaded = c.images.load(f.read())
    assert any(tag in i.tags for i in loaded), [i.tags for i in loaded]
    return c.containers.run(tag, ["cat", "/etc/os-release"], network_mode="none", remove=True)


def as_nobody(fn) -> str:
    """What FN returns, run in a forked child as uid/gid 65534 with no groups."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            os.write(w, fn().encode())
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r) as f:
        got = f.read()
    os.waitpid(pid, 0)
    return got


SCHEMA = json.loads((REPO / "docs" / "json.schema.json").read_text())


def validated(command: str, doc):
    """DOC, after checking it against docs/json.schema.json's definition for COMMAND."""
    import jsonschema

    jsonschema.Draft202012Validator({"$ref": f"#/$defs/{command}", "$defs": SCHEMA["$defs"]}).validate(doc)
    return doc


def bounded(fn, cpu_s: int = 5, memory: int = 1 << 30) -> str:
    """FN's result (a short str) from a forked child held to CPU_S seconds of CPU and MEMORY
    more bytes of address space than the suite already maps: a parser that loops or balloons
    is killed, and the test fails."""
    import resource

    import psutil

    memory += psutil.Process().memory_info().vms  # the child starts with the suite's mappings
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s))
            resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
            os.write(w, fn().encode()[:4096])
            code = 0
        finally:
            os._exit(code)
    os.close(w)
    with os.fdopen(r) as f:
        got = f.read()
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, \
        f"the bounded child {'was killed by signal ' + str(os.WTERMSIG(status)) if os.WIFSIGNALED(status) else 'failed'}"
    return got


UNIT = REPO / "tests" / "unit"
HEAVY_FIXTURES = {"disks", "dockerd", "no_leaks", "remote_host", "debian_disk"}


def pytest_runtest_setup(item) -> None:
    """The unit tier needs no root, disks or daemon: a test there that asks for them fails at
    once, rather than quietly making the tier slow or root-only (tests/integration is for them)."""
    if UNIT in Path(item.path).parents and HEAVY_FIXTURES & set(item.fixturenames):
        pytest.fail(f"{item.name} is in the unit tier but uses {sorted(HEAVY_FIXTURES & set(item.fixturenames))}: "
                    "move it to tests/integration")


@pytest.fixture(scope="session")
def remote_host(disks, dockerd, tmp_path_factory):
    """A real machine over SSH (tests/remotehost.py): sshd in a container of a Debian tree,
    with a disk image at /srv/images/bare.qcow2 for ssh://host/path sources."""
    from remotehost import RemoteHost

    host = RemoteHost(CACHE, tmp_path_factory.mktemp("remote"), dockerd, disks.get("bare", "qcow2"))
    try:
        yield host.start()
    finally:
        host.stop()


@pytest.fixture(scope="session")
def debian_disk():
    """The remote tests' Debian tree (systemd, nginx, sshd) as a GPT qcow2 disk made by the disk
    builder: a real guest for `vm2c services` and `--run` (issue 24); cached beside the tree."""
    from remotehost import debian_tree

    from diskbuilder.layout import Disk, Fs, Part

    tree = debian_tree(CACHE)
    disk = tree.parent / "debian.qcow2"
    if not disk.exists():
        raw = tree.parent / "debian.raw.partial"
        b.build_raw(Disk("gpt", [Part(1100, "linux", Fs("ext4", 1024, "debian-root", tree, label="debian-root"))]),
                    raw)
        b.convert(raw, "qcow2", disk.with_suffix(".partial"))
        raw.unlink()
        disk.with_suffix(".partial").rename(disk)
    return disk
