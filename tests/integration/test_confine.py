"""A crafted image must not make root read a host disk. imagerefs.py checks the names an image
holds, but a second parser drifts from qemu's; what keeps the host safe is that qemu runs where
it sees only the image's directory (confine.py). Each test names a canary disk outside that
directory; its label must never appear, and the image is refused in one line, exit 2."""

from __future__ import annotations

import json
import socket
import subprocess
import threading

import pytest
from conftest import vm2c

from vm2c_tui.errors import Vm2cError
from vm2c_tui.host.confine import Sandbox
from vm2c_tui.source import identify as formats
from vm2c_tui.source import imagerefs

LABEL = "CANARYHOST"


@pytest.fixture
def canary(tmp_path):
    """tmp/outside/canary.img: a host 'disk' with an ext4 labelled CANARYHOST; tmp/img/: where images go."""
    (tmp_path / "outside").mkdir()
    (tmp_path / "img").mkdir()
    disk = tmp_path / "outside" / "canary.img"
    subprocess.run(["truncate", "-s", "16M", disk], check=True)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-L", LABEL, disk], check=True)
    return disk


def _refused(proc) -> None:
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert LABEL not in proc.stdout + proc.stderr


def _qcow2_over(top, backing: str, fmt: str = "raw") -> None:
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-u", "-b", backing, "-F", fmt, top, "16M"],
                   check=True)


@pytest.mark.parametrize("engine", ["kernel", "userspace"])
def test_an_extent_line_the_check_misses_still_cannot_reach_the_host(canary, engine):
    """qemu's sscanf takes 'RW 32768FLAT "..."' (no blank between size and type); the check's
    regex does not, so only the sandbox stands between this descriptor and the host file."""
    vmdk = canary.parent.parent / "img" / "x.vmdk"
    vmdk.write_text('# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\n'
                    f'createType="monolithicFlat"\nRW 32768FLAT "{canary}" 0\n')
    assert imagerefs.check(vmdk, "vmdk")[1] == []  # the check sees no extent at all
    plain = subprocess.run(["qemu-img", "info", "--output=json", vmdk], capture_output=True, text=True)
    assert json.loads(plain.stdout)["virtual-size"] == 16 << 20  # unconfined qemu opens the host file
    proc = vm2c("inspect", vmdk, "--engine", engine)
    _refused(proc)
    assert f"names '{canary}', outside the image's directory" in proc.stderr


@pytest.fixture
def no_second_parser(monkeypatch):
    """As if imagerefs had missed every name: what remains is the sandbox alone."""
    monkeypatch.setattr(imagerefs, "check", lambda path, fmt: ([], []))


@pytest.mark.parametrize("how", ["absolute", "dotdot", "json", "loop-device"])
def test_sandbox_alone_refuses_every_way_of_naming_the_canary(canary, no_second_parser, how):
    top = canary.parent.parent / "img" / "top.qcow2"
    loop = None
    if how == "absolute":
        name = str(canary)
    elif how == "dotdot":
        name = "../outside/canary.img"
    elif how == "json":
        name = "json:" + json.dumps({"driver": "raw", "file": {"driver": "file", "filename": str(canary)}})
    else:  # a host block device holding the canary
        loop = subprocess.run(["losetup", "-f", "--show", "-r", canary], capture_output=True, text=True,
                              check=True).stdout.strip()
        name = loop
    try:
        _qcow2_over(top, name)
        with pytest.raises(Vm2cError) as exc:
            formats.identify(top)
    finally:
        if loop:
            subprocess.run(["losetup", "-d", loop], check=True)
    assert "\n" not in exc.value.message and LABEL not in exc.value.message
    assert "vm2c lets qemu see only that directory" in exc.value.message or "damaged" in exc.value.message


def test_sandbox_has_no_network(tmp_path, no_second_parser):
    """nbd://127.0.0.1:PORT as a backing file: with the check gone, qemu still cannot connect."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    srv.settimeout(10)
    port = srv.getsockname()[1]
    hits = []
    t = threading.Thread(target=lambda: hits.append(_accept(srv)), daemon=True)
    t.start()
    top = tmp_path / "top.qcow2"
    _qcow2_over(top, f"nbd://127.0.0.1:{port}")
    with pytest.raises(Vm2cError):
        formats.identify(top)
    srv.close()
    t.join(15)
    assert hits == [False], "qemu connected out of its sandbox"


def _accept(srv) -> bool:
    try:
        srv.accept()[0].close()
        return True
    except OSError:
        return False


def test_symlinked_layer_resolves_as_qemu_does(canary):
    """qemu resolves a layer's relative backing name from the path it was given, not from the
    layer's real path: through img/mid.qcow2 -> deep/x/mid.qcow2, '../outside/canary.img'
    means the canary, though from deep/x it would mean a harmless decoy."""
    img = canary.parent.parent / "img"
    (img / "deep" / "x").mkdir(parents=True)
    (img / "deep" / "outside").mkdir()
    subprocess.run(["truncate", "-s", "16M", img / "deep" / "outside" / "canary.img"], check=True)  # the decoy
    _qcow2_over(img / "deep" / "x" / "mid.qcow2", "../../outside/canary.img")
    (img / "mid.qcow2").symlink_to("deep/x/mid.qcow2")
    _refused(vm2c("inspect", img / "mid.qcow2"))


def test_the_sandbox_shows_only_what_it_was_given(tmp_path):
    """A probe of the sandbox itself: the image's directory, read-only; no host disk, no /etc."""
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "disk.raw").write_bytes(b"x")
    (tmp_path / "secret").write_text("host")
    box = Sandbox.for_image(tmp_path / "img" / "disk.raw")
    probe = ("import json,os,sys; d=sys.argv[1]; print(json.dumps([os.listdir(d), os.path.exists(sys.argv[2]), "
             "os.path.exists('/etc/shadow'), sorted(os.listdir('/dev'))])); open(d + '/w', 'w')")
    proc = subprocess.run(box.wrap(["/usr/bin/python3", "-c", probe, str(tmp_path / "img"), str(tmp_path / "secret")]),
                          capture_output=True, text=True)
    listed, secret, shadow, devs = json.loads(proc.stdout)
    assert listed == ["disk.raw"] and secret is False and shadow is False
    assert not any(d.startswith(("sd", "vd", "nvme", "loop", "nbd", "dm-")) for d in devs), devs
    assert "Read-only file system" in proc.stderr


@pytest.mark.parametrize("engine", ["kernel", "userspace"])
def test_trust_dir_lets_a_backing_file_lie_elsewhere(tmp_path, engine):
    """The operator's explicit choice: a base image kept in another directory (a shared
    template store, say) is read once that directory is named with --trust-dir."""
    store, vms = tmp_path / "templates", tmp_path / "vms"
    store.mkdir()
    vms.mkdir()
    base = store / "base.raw"
    subprocess.run(["truncate", "-s", "16M", base], check=True)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-L", "TEMPLATE", base], check=True)
    top = vms / "vm.qcow2"
    _qcow2_over(top, str(base))
    refused = vm2c("inspect", top, "--engine", engine)
    assert refused.returncode == 2 and "--trust-dir DIR" in refused.stderr, refused.stderr
    ok = vm2c("--trust-dir", store, "inspect", "--json", top, "--engine", engine)
    assert ok.returncode == 0, ok.stderr
    doc = json.loads(ok.stdout)
    assert doc["backing_chain"] == [str(base)] and doc["partitions"][0]["label"] == "TEMPLATE"
    assert vm2c("--trust-dir", tmp_path / "nope", "inspect", top).returncode == 2
