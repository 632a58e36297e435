"""`vm2c cleanup` runs as root on what state files say: a planted one must not make it
unmount, detach, kill or delete anything vm2c did not make, a bad entry must not stop it, and
a resource whose release failed must stay on record with the reason."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

import psutil
import pytest
from conftest import vm2c

from vm2c_tui.host.session import Session


@pytest.fixture
def state(tmp_path, monkeypatch):
    d = tmp_path / "state"
    d.mkdir(mode=0o700)
    monkeypatch.setenv("VM2C_STATE_DIR", str(d))
    return d


def _plant(state: Path, resources: list[dict]) -> Path:
    f = state / "planted.json"
    f.write_text(json.dumps({"pid": 999999, "started": 1.0, "purpose": "run", "source": "x", "resources": resources}))
    return f


def _mounted(path: Path) -> bool:
    return any(line.split()[4] == str(path) for line in Path("/proc/self/mountinfo").read_text().splitlines())


@pytest.mark.parametrize("how", ["symlink", "world-writable", "someone-elses"])
def test_an_unsafe_state_directory_is_refused(tmp_path, monkeypatch, how):
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    d = tmp_path / "state"
    if how == "symlink":
        d.symlink_to(real)
    else:
        d.mkdir(mode=0o700)
        if how == "world-writable":
            os.chmod(d, 0o777)
        else:
            os.chown(d, 65534, 65534)
    proc = vm2c("cleanup", env={**os.environ, "VM2C_STATE_DIR": str(d)})
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert f"state directory {d}" in proc.stderr and "refusing to use it" in proc.stderr


def test_a_planted_state_file_steers_nothing(tmp_path, state):
    victim_mnt = tmp_path / "victim-mnt"
    victim_mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", victim_mnt], check=True)
    victim_file = tmp_path / "victim.img"
    subprocess.run(["truncate", "-s", "1M", victim_file], check=True)
    loop = subprocess.run(["losetup", "-f", "--show", victim_file], capture_output=True, text=True,
                          check=True).stdout.strip()
    sleeper = subprocess.Popen(["sleep", "120"])
    victim_dir = tmp_path / "victim-dir"
    victim_dir.mkdir()
    ours = Path(tempfile.mkdtemp(prefix="vm2c-planted-"))  # a real vm2c temp dir: the one thing released
    try:
        _plant(state, [
            {"kind": "tempdir", "id": str(ours)},
            {"kind": "mount", "id": str(victim_mnt)},
            {"kind": "loop", "id": loop, "backing": str(victim_file)},
            {"kind": "process", "id": str(sleeper.pid), "started": psutil.Process(sleeper.pid).create_time(),
             "exe": "sleep"},
            {"kind": "tempdir", "id": str(victim_dir)},
            {"kind": "mount"},  # a bad entry: cleanup goes on past it
            {"kind": "loop", "id": "/dev/loop0"},  # no backing recorded: never 'any backing'
        ])
        proc = vm2c("cleanup", "--all", check=True)
        assert _mounted(victim_mnt), proc.stdout
        assert Path(f"/sys/block/{os.path.basename(loop)}/loop/backing_file").exists(), proc.stdout
        assert sleeper.poll() is None and victim_dir.is_dir()
        out = proc.stdout
        assert f"refused mount {victim_mnt}" in out and "not under one of this run's temp dirs" in out
        assert f"refused loop {loop}" in out and "attached read-write" in out
        assert f"refused process {sleeper.pid}" in out and "'sleep', not a process vm2c starts" in out
        assert f"refused tempdir {victim_dir}" in out
        assert "refused mount None" in out and "refused loop /dev/loop0" in out
        assert f"released tempdir {ours}" in out and not ours.exists()
    finally:
        sleeper.kill()
        sleeper.wait()
        subprocess.run(["losetup", "-d", loop], capture_output=True)  # (a broken cleanup may have done it)
        subprocess.run(["umount", victim_mnt], check=True)
        if ours.exists():
            ours.rmdir()


def test_a_release_that_fails_stays_on_record(state):
    """A temp dir with something still mounted in it cannot go: the run's state file keeps it
    with the reason, cleanup says it is still held, and releases it once it can."""
    session = Session("test")
    work = session.tempdir("held")
    (work / "m").mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", work / "m"], check=True)
    try:
        with pytest.raises(Exception, match="still has something mounted under it"):
            session.close()
        doc = json.loads(session.state_file.read_text())
        assert [r["id"] for r in doc["resources"]] == [str(work)]
        assert "still has something mounted" in doc["resources"][0]["error"]
        assert os.stat(session.state_file).st_mode & 0o777 == 0o600
        doc["pid"] = 999999  # as if the run had died
        session.state_file.write_text(json.dumps(doc))
        held = vm2c("cleanup", check=True).stdout
        assert f"still held: tempdir {work}" in held and work.exists() and session.state_file.exists()
    finally:
        subprocess.run(["umount", work / "m"], check=True)
    time.sleep(0.1)
    done = vm2c("cleanup", check=True).stdout
    assert f"released tempdir {work}" in done and not work.exists() and not session.state_file.exists()


def test_remote_services_left_stopped_are_named_never_acted_on(state, tmp_path):
    """--stop-services whose run was killed: cleanup says which to start and where; it runs
    nothing on a remote because a state file says so."""
    f = _plant(state, [{"kind": "services", "id": "ssh://root@web01", "names": ["nginx", "php8.2-fpm"]}])
    out = vm2c("cleanup", check=True, env={**os.environ, "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
                                           "VM2C_SSH_CONFIG": str(tmp_path / "no-such-config")})
    assert "not restarted: nginx, php8.2-fpm on ssh://root@web01" in out.stdout + out.stderr
    assert not f.exists()
