"""Images built through a real dockerd from fixture disks, and run."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import time
from pathlib import Path

import docker
import pytest
from conftest import (
    VM2C,
    as_nobody,
    cramped_dockerd,
    data_root,
    docker_client,
    fingerprint,
    load_and_run,
    validated,
    vm2c,
)
from manifest import compare, tar_manifest, tree_manifest

FULL_MOUNTS = {"/": "root", "/var": "var", "/home": "home"}  # /boot is left out by the default preset
EXCLUDED = (b"./boot/", b"./lib/modules/", b"./var/tmp/", b"./var/cache/apt/pkgcache.bin", b"./etc/ssh/ssh_host_",
            b"./etc/machine-id")


def ignore_default(p: bytes) -> bool:
    base = os.path.basename(p)
    return (p == b"." or base == b"lost+found" or base.startswith(b".wh.")
            or any(p.startswith(e) for e in EXCLUDED))


def saved_layers(tmp_path, image: str) -> list:
    dest = tmp_path / "saved.tar"
    out = vm2c("--debug", "inspect", "--help")  # keeps vm2c importable in the same env
    assert out.returncode == 0
    c = docker_client()
    with open(dest, "wb") as f:
        for chunk in c.images.get(image).save(chunk_size=1 << 20):
            f.write(chunk)
    layers = []
    with tarfile.open(dest) as tf:
        manifest = json.load(tf.extractfile("manifest.json"))
        for name in manifest[0]["Layers"]:
            p = tmp_path / name.replace("/", "_")
            with open(p, "wb") as f:
                f.write(tf.extractfile(name).read())
            layers.append(p)
    return layers


@pytest.mark.parametrize("engine", ["kernel", "userspace"])
def test_convert_import_matches_source_and_saves(disks, dockerd, tmp_path, no_leaks, engine):
    proc = vm2c("convert", disks.get("full", "qcow2"), "--tag", "vm2c-test/full:import", "--json",
                "--engine", engine, check=True)
    doc = validated("convert", json.loads(proc.stdout))
    assert doc["method"] == "import" and doc["root"] == "fullvg/root"
    assert doc["os"]["pretty_name"] == "Demo Linux 1.0 (vm2c)"
    assert doc["smoke"]["ok"] and "Demo Linux" in doc["smoke"]["os_release"]
    assert "vm2c-test/full:import" in doc["tags"]
    layers = saved_layers(tmp_path, "vm2c-test/full:import")  # docker save verifies the layer
    assert len(layers) == 1
    trees = disks.trees("full")
    expected = tree_manifest({mp: trees / d for mp, d in FULL_MOUNTS.items()})
    got = tar_manifest(layers[0])
    assert compare(expected, got, ignore=ignore_default) == []
    assert got[b"./srv/xattrs"]["xattrs"]["user.comment"] == b"kept by import"
    c = docker_client()
    labels = c.images.get("vm2c-test/full:import").labels
    assert labels["org.vm2c.root"] == "fullvg/root" and labels["org.vm2c.source"].startswith("full")
    out = c.containers.run("vm2c-test/full:import", ["getcap", "/usr/bin/ping"], network_mode="none", remove=True)
    assert b"cap_net_raw" in out


def test_dockerfile_route_drops_only_non_capability_xattrs(disks, dockerd, tmp_path, no_leaks):
    proc = vm2c("convert", disks.get("full"), "--tag", "vm2c-test/full:dockerfile", "--method", "dockerfile",
                "--workdir", tmp_path, check=True)
    assert "lose xattrs" in proc.stderr and "/srv/xattrs: user.comment, user.binary" in proc.stderr
    assert "smoke test: ok" in proc.stdout
    layers = saved_layers(tmp_path, "vm2c-test/full:dockerfile")
    assert len(layers) == 1
    trees = disks.trees("full")
    expected = tree_manifest({mp: trees / d for mp, d in FULL_MOUNTS.items()})
    for e in expected.values():
        e["xattrs"] = {k: v for k, v in e["xattrs"].items() if k == "security.capability"}
    got = tar_manifest(layers[0])
    assert compare(expected, got, ignore=ignore_default) == []
    assert got[b"./usr/bin/ping"]["xattrs"]["security.capability"]
    assert not list(tmp_path.glob("vm2c-build-*")), "the build context is removed"


def test_build_from_archive_dir_both_methods(disks, dockerd, tmp_path):
    out = tmp_path / "out"
    vm2c("archive", disks.get("demo"), "-o", out, check=True)
    for method in ("import", "dockerfile"):
        proc = vm2c("build", out, "--tag", f"vm2c-test/demo:{method}", "--method", method, check=True)
        assert "smoke test: ok" in proc.stdout and "1 layer(s)" in proc.stdout
        assert "docker run -it --rm vm2c-test/demo:" in proc.stdout
        assert "timings: build " in proc.stdout and " smoke " in proc.stdout


def test_build_json_without_smoke_test_runs_no_container(disks, dockerd, tmp_path):
    out = tmp_path / "out"
    vm2c("archive", disks.get("demo"), "-o", out, check=True)
    c = docker_client()
    since = int(time.time()) - 1  # the daemon runs on this machine's clock
    doc = validated("build", json.loads(vm2c("build", out, "--tag", "vm2c-test/quiet:1", "--no-smoke", "--json", check=True).stdout))
    assert doc["tags"] == ["vm2c-test/quiet:1"] and doc["method"] == "import" and doc["layers"] == 1
    assert doc["source"] == str(out / "img.tar") and doc["labels"]["org.vm2c.os"] == "Demo Linux 1.0 (vm2c)"
    assert doc["smoke"] is None and "smoke" not in doc["timings"] and doc["timings"]["total"] >= doc["timings"]["build"]
    until = int(time.time()) + 1
    runs = list(c.events(since=since, until=until, filters={"type": "container", "image": doc["image_id"]},
                         decode=True))
    assert runs == []
    smoked = validated("build", json.loads(vm2c("build", out, "--tag", "vm2c-test/quiet:2", "--json", check=True).stdout))
    assert smoked["smoke"]["ok"] and "smoke" in smoked["timings"]
    ran = list(c.events(since=until - 1, until=int(time.time()) + 1,
                        filters={"type": "container", "image": smoked["image_id"]}, decode=True))
    assert any(e.get("status") == "start" or e.get("Action") == "start" for e in ran), ran


def test_invalid_reference_is_refused_before_any_work(disks, tmp_path, no_leaks):
    for bad in ("UPPER/case:x", "a:b:c", "name:-tag", ""):
        proc = vm2c("convert", disks.get("demo"), "--tag", bad)
        assert proc.returncode == 2 and "invalid image reference" in proc.stderr, proc.stderr


def test_convert_refuses_a_bad_save_path_or_workdir_before_any_work(disks, tmp_path, no_leaks):
    src = disks.get("demo")
    afile = tmp_path / "afile"
    afile.write_text("x")
    cases = ((["--save", tmp_path / "no/such/x.tar"], f"its directory {tmp_path}/no/such does not exist"),
             (["--save", afile / "x.tar"], f"its directory {afile} is not a directory"),
             (["--save", tmp_path], f"--save {tmp_path}: is a directory; give a file name in it"),
             (["--method", "dockerfile", "--workdir", tmp_path / "nope"], f"--workdir {tmp_path}/nope: does not exist"),
             (["--method", "dockerfile", "--workdir", afile], f"--workdir {afile}: is not a directory"))
    for extra, words in cases:
        proc = vm2c("convert", src, "--tag", "vm2c-test/bad:1", *extra)
        assert proc.returncode == 2 and len(proc.stderr.splitlines()) == 1 and words in proc.stderr, proc.stderr


def test_no_daemon_writes_a_loadable_archive(disks, dockerd, tmp_path, no_leaks):
    dest = tmp_path / "demo-image.tar"
    env = {**os.environ, "DOCKER_HOST": f"unix://{tmp_path}/nothing.sock"}
    proc = vm2c("convert", disks.get("demo"), "--tag", "vm2c-test/offline:1", "--save", dest, env=env, check=True)
    assert f"docker load -i {dest}" in proc.stdout
    assert b'PRETTY_NAME="Demo Linux 1.0 (vm2c)"' in load_and_run(dest, "vm2c-test/offline:1")
    nodaemon = vm2c("convert", disks.get("demo"), "--tag", "x/y:z", env=env)
    assert nodaemon.returncode == 2 and "no Docker daemon answers" in nodaemon.stderr


def test_no_daemon_is_one_line_that_says_why(tmp_path):
    """No socket, a socket nothing listens on, one this user may not open: each in plain words,
    and --save is offered only by convert, the one command that has it."""
    import socket

    from vm2c_tui.errors import Vm2cError
    from vm2c_tui.image import daemon as image

    nothing = {**os.environ, "DOCKER_HOST": f"unix://{tmp_path}/nothing.sock"}
    for args in (["build", tmp_path], ["export", "some-container"]):
        if args[0] == "build":
            (tmp_path / "img.tar").write_bytes(b"\0" * 10240)
        proc = vm2c(*args, "--tag", "a/b:c", env=nothing)
        assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
        assert "(no socket there); start one or point DOCKER_HOST at one" in proc.stderr
        assert "--save" not in proc.stderr
    dead = tmp_path / "dead.sock"
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(dead))  # the file stays, no one listens
    proc = vm2c("export", "x", "--tag", "a/b:c", env={**os.environ, "DOCKER_HOST": f"unix://{dead}"})
    assert "(connection refused: nothing listens there)" in proc.stderr, proc.stderr
    def ask() -> str:
        os.environ["DOCKER_HOST"] = f"unix://{locked}"
        try:
            image.client(timeout=5, hint=image.SAVE_HINT)  # were it let in: no answer in time
        except Vm2cError as exc:
            return exc.message
        return "answered"

    top = Path(tempfile.mkdtemp(prefix="vm2c-test-"))  # pytest's own dirs are 0700: nobody cannot pass
    try:
        os.chmod(top, 0o711)
        locked = top / "locked.sock"
        with socket.socket(socket.AF_UNIX) as s:
            s.bind(str(locked))
            s.listen()
            os.chmod(locked, 0o600)  # root's alone
            said = as_nobody(ask)
    finally:
        shutil.rmtree(top)
    assert "(permission denied on the socket: run as root or in the docker group)" in said, said
    assert said.endswith("use --save PATH to write a loadable image archive without one")


def test_export_slimming_loop(disks, dockerd, tmp_path):
    vm2c("convert", disks.get("demo"), "--tag", "vm2c-test/slim:fat", check=True)
    c = docker_client()
    ctr = c.containers.run("vm2c-test/slim:fat", ["rm", "-rf", "/usr/share/doc", "/var/log/messages"],
                           network_mode="none", detach=True)
    ctr.wait()
    proc = vm2c("export", ctr.id, "--tag", "vm2c-test/slim:thin", check=True)
    assert "saved" in proc.stdout
    doc = validated("export", json.loads(vm2c("export", ctr.id, "--tag", "vm2c-test/slim:thin2", "--json",
                                              check=True).stdout))
    assert doc["tags"] == ["vm2c-test/slim:thin2"] and 0 < doc["size"] < doc["size_before"]
    assert doc["saved"] == doc["size_before"] - doc["size"] and doc["layers"] == 1
    img = c.images.get("vm2c-test/slim:thin")
    assert len(img.attrs["RootFS"]["Layers"]) == 1
    assert img.attrs["Config"]["Cmd"] == ["/bin/sh"]
    out = c.containers.run("vm2c-test/slim:thin", ["ls", "/usr/share"], network_mode="none", remove=True)
    assert b"doc" not in out
    ctr.remove()


def test_private_daemon_from_a_relative_directory(tmp_path, monkeypatch):
    """The demo's and the tests' daemon: a relative base once gave containerd a relative socket
    address it could not dial, and the failed start left the data root mounted."""
    from vm2c_tui.errors import Vm2cError
    from vm2c_tui.image.dockerd import PrivateDockerd, daemon_answers

    monkeypatch.chdir(tmp_path)
    daemon = PrivateDockerd(base=Path("d"))
    try:
        assert daemon_answers(daemon.start(30))
    finally:
        daemon.stop()
    assert str(tmp_path) not in Path("/proc/self/mounts").read_text() and not Path("d").exists()
    with pytest.raises(Vm2cError, match="too long a directory"):
        PrivateDockerd(base=tmp_path / ("x" * 100)).start()


def test_private_daemon_through_a_symlink_leaves_no_mount(tmp_path):
    """dockerd bind-mounts its data root onto itself and names it by the real path; stop()
    looked for the path it was given, and a base reached through a symlink kept that mount
    (found when the benchmark's cache directory was a link)."""
    from vm2c_tui.image.dockerd import PrivateDockerd, daemon_answers

    top = Path(tempfile.mkdtemp(prefix="vm2c-l", dir="/tmp"))  # containerd's socket paths are short
    try:
        (top / "real").mkdir()
        (top / "link").symlink_to(top / "real")
        daemon = PrivateDockerd(base=top / "link" / "d")
        try:
            assert daemon_answers(daemon.start(30))
        finally:
            daemon.stop()
        assert str(top) not in Path("/proc/self/mounts").read_text()
    finally:
        shutil.rmtree(top, ignore_errors=True)


def test_daemon_gone_midway_keeps_the_tar(disks, tmp_path, no_leaks):
    from vm2c_tui.image.dockerd import PrivateDockerd

    out = tmp_path / "out"
    vm2c("archive", disks.get("full"), "-o", out, check=True)
    daemon = PrivateDockerd()
    host = daemon.start()
    env = {**os.environ, "DOCKER_HOST": host}
    proc = subprocess.Popen([*VM2C, "build", out, "--tag", "vm2c-test/gone:1"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(0.3)
    daemon.stop()
    _, err = proc.communicate(timeout=120)
    if proc.returncode == 0:
        pytest.fail("the build finished before the daemon was stopped; the fixture is too small")
    assert proc.returncode == 2 and b"Traceback" not in err
    assert b"Docker daemon" in err
    assert (out / "img.tar").exists()


def test_convert_refuses_an_image_the_daemons_data_root_cannot_hold(disks, tmp_path, no_leaks):
    """A daemon whose data root has 8 MiB left: convert and build stop before any byte is
    sent, in one line that says where and how much."""
    vm2c("archive", disks.get("demo"), "-o", tmp_path / "out", check=True)
    with cramped_dockerd(tmp_path) as host:
        env = {**os.environ, "DOCKER_HOST": host}
        data = data_root(host)
        for args in (["convert", disks.get("demo")], ["build", tmp_path / "out"]):
            proc = vm2c(*args, "--tag", "vm2c-test/full:1", env=env)
            assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
            line, = proc.stderr.strip().splitlines()[-1:]
            assert f"the Docker data root {data} has only" in line and "MiB free" in line, line
        client = docker.DockerClient(base_url=host, timeout=60)
        assert client.images.list() == []
        client.close()


def test_build_of_a_file_that_is_not_a_tar_is_one_line(dockerd, tmp_path):
    """The dockerfile route reads the tar's headers first (the xattrs ADD drops), and so does a
    build from a DIR without a Dockerfile (sparse members): either says so plainly."""
    (tmp_path / "img.tar").write_bytes(os.urandom(100_000))
    (tmp_path / "Dockerfile").write_text('FROM scratch\nADD img.tar /\nCMD ["/bin/sh"]\n')
    routes = (["--method", "dockerfile"], ["--method", "import"])
    for extra, dockerfile in zip(routes, (True, False)):
        if not dockerfile:
            (tmp_path / "Dockerfile").unlink()
        proc = vm2c("build", tmp_path, "--tag", "vm2c-test/notatar:1", *extra)
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.splitlines() == [f"vm2c: {tmp_path}/img.tar: not a tar file (or a damaged one)"]


def test_failed_smoke_test_is_reported_and_the_image_kept(disks, dockerd, tmp_path):
    out = tmp_path / "out"
    vm2c("archive", disks.get("demo"), "-o", out, check=True)
    df = out / "Dockerfile"
    df.write_text(df.read_text().replace('CMD ["/bin/sh"]', 'CMD ["/bin/bash"]'))  # no bash in busybox land
    proc = vm2c("build", out, "--tag", "vm2c-test/nosh:1")
    assert proc.returncode == 3, proc.stderr
    assert "smoke test FAILED (/bin/bash)" in proc.stdout and "the image is kept" in proc.stdout
    assert docker_client().images.get("vm2c-test/nosh:1")


def test_convert_save_with_a_daemon_writes_docker_save_output(disks, dockerd, tmp_path):
    dest = tmp_path / "saved.tar"
    doc = validated("convert", json.loads(vm2c("convert", disks.get("bare"), "--tag", "vm2c-test/bare:1",
                                               "--save", dest, "--json", check=True).stdout))
    assert "save" in doc["timings"]
    with tarfile.open(dest) as tf:
        manifest = json.load(tf.extractfile("manifest.json"))
    assert manifest[0]["RepoTags"] == ["vm2c-test/bare:1"]


@pytest.mark.parametrize("how", ["SIGTERM", "SIGKILL"])
def test_convert_interrupted_midway_leaves_nothing(disks, dockerd, tmp_path, how, no_leaks):
    import signal as sig

    src = disks.get("full", "qcow2")
    before = fingerprint(src)
    proc = subprocess.Popen([*VM2C, "convert", src, "--tag", f"vm2c-test/int:{how.lower()}", "--limit-rate", "1M"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    for _ in range(200):
        if subprocess.run(["pgrep", "-f", "--", "--checkpoint-action=sleep=1"], capture_output=True).returncode == 0:
            break
        time.sleep(0.05)
    else:
        raise AssertionError("tar never started")
    time.sleep(0.5)
    proc.send_signal(getattr(sig, how))
    _, err = proc.communicate(timeout=60)
    if how == "SIGTERM":
        assert proc.returncode == 130 and b"Traceback" not in err
    else:
        time.sleep(0.3)
        vm2c("cleanup", check=True)
    assert subprocess.run(["pgrep", "-f", "--", "--checkpoint-action=sleep=1"]).returncode == 1
    assert fingerprint(src) == before


def test_convert_an_lv_in_pieces_runs(disks, dockerd, no_leaks):
    """A root LV grown with lvextend, as root with the default engine: read in user space
    (the kernel route cannot join the pieces here), imported, and the smoke test passes."""
    proc = vm2c("convert", disks.get("extended"), "--tag", "vm2c-test/extended:1", "--json", check=True)
    doc = validated("convert", json.loads(proc.stdout))
    assert doc["root"] == "grownvg/root" and doc["smoke"]["ok"], doc
    out = docker_client().containers.run("vm2c-test/extended:1", ["/bin/busybox", "wc", "-c", "/srv/across.bin"],
                                         network_mode="none", remove=True)
    assert out.split()[0] == str(24 << 20).encode()


def test_a_dockerfile_build_streams_its_context_and_checks_room_only_for_the_sdks_copy(dockerd, tmp_path, no_leaks):
    """The build context goes from GNU tar's pipe to the daemon: a 32 MiB img.tar builds with a
    16 MiB TMPDIR and leaves nothing there. With a .dockerignore the docker SDK packs the context
    into TMPDIR itself: then the same build is refused in one line, before the daemon sees it."""
    ctx, small = tmp_path / "ctx", tmp_path / "small"
    ctx.mkdir()
    small.mkdir()
    with tarfile.open(ctx / "img.tar", "w") as tar:
        info = tarfile.TarInfo("big")
        info.size = 32 << 20
        tar.addfile(info, open("/dev/zero", "rb"))
    (ctx / "Dockerfile").write_text("FROM scratch\nADD img.tar /\nCMD [\"/bin/sh\"]\n")
    env = {**os.environ, "TMPDIR": str(small)}
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m,mode=0700", "tmpfs", small], check=True)
    try:
        built = vm2c("build", ctx, "--tag", "vm2c-test/ctxroom:streamed", "--method", "dockerfile", env=env)
        (ctx / ".dockerignore").write_text("*.bak\n")
        refused = vm2c("build", ctx, "--tag", "vm2c-test/ctxroom:sdk", "--method", "dockerfile", env=env)
        assert os.listdir(small) == []
    finally:
        subprocess.run(["umount", small], check=True)
    assert built.returncode == 3 and "Traceback" not in built.stderr, built.stderr  # built; no shell to smoke-test
    assert refused.returncode == 2 and "Traceback" not in refused.stderr, refused.stderr
    line = refused.stderr.strip().splitlines()[-1]
    assert f"temporary file in {small}, which has" in line and "TMPDIR" in line and "--method import" in line, line
    c = docker_client()
    try:
        assert [t for i in c.images.list(name="vm2c-test/ctxroom") for t in i.tags] == ["vm2c-test/ctxroom:streamed"]
        img = c.images.get("vm2c-test/ctxroom:streamed")
        assert len(img.attrs["RootFS"]["Layers"]) == 1 and img.attrs["Size"] >= 32 << 20  # ADD unpacked /big
    finally:
        c.close()
