"""vm2c archive: a faithful tar of the whole assembled guest, in every format."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tarfile
import time

import pytest
from conftest import VM2C, fingerprint, sigint_default, validated, vm2c
from manifest import compare, tar_manifest, tree_manifest

FULL_MOUNTS = {"/": "root", "/boot": "boot", "/var": "var", "/home": "home"}


sha = fingerprint


def _slow_archive(src, out, engine: str = "kernel") -> subprocess.Popen:
    """vm2c archive held to 1 MiB/s (--limit-rate), returned once img.tar.partial exists."""
    proc = subprocess.Popen([*VM2C, "archive", src, "-o", out, "--preset", "none", "--engine", engine,
                             "--limit-rate", "1M"],
                            stderr=subprocess.PIPE, stdout=subprocess.PIPE, preexec_fn=sigint_default)
    _wait_for_partial(out, proc)
    return proc


def _ignore_mkfs_and_wh(p: bytes) -> bool:
    base = os.path.basename(p)
    return base == b"lost+found" or b"/lost+found/" in p or base.startswith(b".wh.") or p.startswith(b"./boot/efi")


@pytest.mark.parametrize("fmt", ["raw", "qcow2", "vdi", "vmdk"])
def test_tar_matches_source_tree_exactly(disks, fmt, tmp_path, no_leaks):
    src = disks.get("full", fmt)
    before = sha(src)
    out = tmp_path / "out"
    proc = vm2c("archive", src, "-o", out, "--preset", "none", "--no-sanitize", check=True)
    trees = disks.trees("full")
    expected = tree_manifest({mp: trees / d for mp, d in FULL_MOUNTS.items()})
    got = tar_manifest(out / "img.tar")
    assert f", {len(got)} entries in " in proc.stdout  # vm2c's walk counts what tar archived
    diffs = compare(expected, got, ignore=_ignore_mkfs_and_wh)
    assert diffs == []
    assert sha(src) == before
    # the spot checks the issue names, so a manifest bug cannot hide them
    assert got[b"./usr/bin/ping"]["xattrs"]["security.capability"]
    assert got[b"./srv/setuid"]["mode"] == 0o4755
    assert got[b"./srv/sticky"]["mode"] == 0o1777
    assert got[b"./srv/char-null"]["dev"] == (1, 3)
    assert got[b"./srv/caf\xe9-latin1"]["type"] == "file"
    assert got[b"./srv/abs-link"]["link"] == "/usr/bin/ping"
    assert got[b"./srv/acl"]["xattrs"]["system.posix_acl_access"]  # numeric ids, no host names
    assert got[b"./srv/acl"]["acl"] == ""
    assert b"./srv/.wh.secret" not in got


def test_fat_boot_efi_is_copied_with_mtools(disks, tmp_path):
    out = tmp_path / "out"
    proc = vm2c("archive", disks.get("full"), "-o", out, "--preset", "none", "--json", check=True)
    assert "mounted p1 at /boot/efi (vfat, via mtools)" in proc.stderr
    doc = validated("archive", json.loads(proc.stdout))
    assert doc["tar"] == str(out / "img.tar") and doc["dockerfile"] == str(out / "Dockerfile")
    assert doc["size"] == (out / "img.tar").stat().st_size and doc["root"] == "fullvg/root"
    assert {"id": "p1", "mountpoint": "/boot/efi", "fstype": "vfat", "via": "mtools"} in doc["mounted"]
    with tarfile.open(out / "img.tar") as tf:
        data = tf.extractfile("./boot/efi/EFI/debian/grubx64.efi").read()
        # fstab says umask=0077: the guest's vfat showed rwx------ for files and directories alike
        modes = {m.name: m.mode for m in tf.getmembers() if m.name.startswith("./boot/efi/")}
    assert data == b"MZ" + bytes(1022)
    assert modes and set(modes.values()) == {0o700}, modes


def test_default_preset_and_sanitising(disks, tmp_path):
    out = tmp_path / "out"
    proc = vm2c("archive", disks.get("full"), "-o", out, "--estimate", check=True)
    names = set(tarfile.open(out / "img.tar").getnames())
    assert "./boot" in names and not any(n.startswith("./boot/") for n in names)
    assert "./lib/modules" in names and not any(n.startswith("./lib/modules/") for n in names)
    for d in ("proc", "sys", "dev", "run", "tmp"):
        assert f"./{d}" in names
    assert "./var/tmp/scratch" not in names and "./var/cache/apt/pkgcache.bin" not in names
    assert not any("lost+found" in n for n in names)
    assert not any(n.startswith("./etc/ssh/ssh_host_") for n in names)
    assert "./etc/ssh/sshd_config" in names
    tf = tarfile.open(out / "img.tar")
    assert tf.getmember("./etc/machine-id").size == 0
    assert tf.getmember("./etc/machine-id").mode == 0o444
    assert "/srv/.wh.secret" in proc.stderr
    assert "preset savings: none 0B, container" in proc.stderr
    dockerfile = (out / "Dockerfile").read_text()
    assert dockerfile.startswith("FROM scratch\nADD img.tar /\nENV PATH=")
    assert 'CMD ["/bin/sh"]' in dockerfile
    assert not any(m.sparse for m in tf.getmembers() if m.isfile()), "GNU sparse members break docker save"


def test_minimal_preset_and_user_excludes(disks, tmp_path):
    out = tmp_path / "out"
    vm2c("archive", disks.get("demo"), "-o", out, "--preset", "minimal", "--exclude", "*.profile",
         "--exclude", "./srv/hello.txt", check=True)
    names = set(tarfile.open(out / "img.tar").getnames())
    assert "./usr/share/doc" in names and "./usr/share/doc/busybox" not in names
    assert "./var/log/messages" not in names
    assert "./home/operator/.profile" not in names and "./srv/hello.txt" not in names
    assert "./bin/busybox" in names


def test_no_fstab_and_explicit_root(disks, tmp_path):
    out = tmp_path / "out"
    vm2c("archive", disks.get("mbr"), "-o", out, "--no-fstab", "--root", "p5", "--preset", "none", check=True)
    names = set(tarfile.open(out / "img.tar").getnames())
    assert "./etc/os-release" in names and "./home" in names
    assert not any(n.startswith("./home/operator") for n in names)
    bad = vm2c("archive", disks.get("mbr"), "-o", out, "--root", "p9")
    assert bad.returncode == 2 and "no filesystem with id 'p9'" in bad.stderr


def test_mbr_xfs_root_with_btrfs_home(disks, tmp_path, no_leaks):
    out = tmp_path / "out"
    vm2c("archive", disks.get("mbr"), "-o", out, "--preset", "none", "--no-sanitize", check=True)
    trees = disks.trees("mbr")
    expected = tree_manifest({"/": trees / "root", "/boot": trees / "boot"})
    got = tar_manifest(out / "img.tar")
    diffs = compare(expected, got, ignore=lambda p: _ignore_mkfs_and_wh(p) or p.startswith(b"./home"))
    assert diffs == []
    assert got[b"./home/operator/.profile"]["uid"] == 1000


def test_dry_run_prints_commands_and_runs_nothing(disks, tmp_path, no_leaks):
    out = tmp_path / "out"
    proc = vm2c("archive", disks.get("full", "qcow2"), "-o", out, "--dry-run", check=True)
    lines = proc.stdout.splitlines()
    assert any(l.startswith("qemu-storage-daemon ") for l in lines)
    assert any(l.startswith("LOOP1=$(losetup -f --show -r -o ") for l in lines)
    assert any(l.startswith("mount -t ext4 -o ro,nosuid,nodev,noexec,noload") for l in lines)
    assert any(l.startswith("tar --create --file=") for l in lines)
    assert lines[-1].startswith("kill ")
    assert not out.exists()


@contextlib.contextmanager
def small_output(tmp_path, size: str):
    """A tmpfs of SIZE as the output directory, unmounted afterwards."""
    small = tmp_path / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", small], check=True)
    try:
        yield small
    finally:
        subprocess.run(["umount", small], check=True)


def test_refuses_when_output_has_too_little_space(disks, tmp_path, no_leaks):
    with small_output(tmp_path, "4m") as small:
        proc = vm2c("archive", disks.get("full"), "-o", small, "--preset", "none")
        assert proc.returncode == 2
        assert "MiB free" in proc.stderr and "Traceback" not in proc.stderr
        assert not (small / "img.tar").exists() and not (small / "img.tar.partial").exists()


@pytest.mark.parametrize("sig,engine", [(signal.SIGINT, "kernel"), (signal.SIGTERM, "kernel"),
                                        (signal.SIGINT, "userspace"), (signal.SIGTERM, "userspace")])
def test_interrupt_releases_everything(disks, tmp_path, sig, engine, no_leaks):
    src = disks.get("full", "qcow2")
    before = sha(src)
    out = tmp_path / "out"
    proc = _slow_archive(src, out, engine)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert b"Traceback" not in err
    assert not (out / "img.tar.partial").exists() and not (out / "img.tar").exists()
    assert sha(src) == before


def test_an_interrupt_waits_until_a_started_process_is_held():
    """Ctrl-C while tar, find, a loop device or a mount is being acquired is delivered once
    vm2c holds it (so it is released), and the process started meanwhile has a normal mask."""
    from vm2c_tui.host.run import die_with_parent, signals_held

    child = None
    before = signal.signal(signal.SIGINT, signal.default_int_handler)  # see sigint_default
    try:
        with pytest.raises(KeyboardInterrupt):
            with signals_held():
                os.kill(os.getpid(), signal.SIGINT)
                child = subprocess.Popen(["sleep", "30"], preexec_fn=die_with_parent)
            pytest.fail("the held Ctrl-C was not delivered")
    finally:
        signal.signal(signal.SIGINT, before)
    try:
        assert child is not None, "the interrupt came before the process was held"
        status = open(f"/proc/{child.pid}/status").read()
        assert "SigBlk:\t0000000000000000" in status
    finally:
        child.kill()
        child.wait()


def test_sigkill_then_cleanup(disks, tmp_path, no_leaks):
    src = disks.get("full", "vdi")
    before = sha(src)
    out = tmp_path / "out"
    proc = _slow_archive(src, out)
    proc.kill()
    proc.wait()
    time.sleep(0.2)
    assert subprocess.run(["pgrep", "-f", "--", f"--file={out}/img.tar.partial"]).returncode == 1, "tar outlived vm2c"
    res = vm2c("cleanup", check=True)
    assert "released loop" in res.stdout and "released mount" in res.stdout
    assert "released process" in res.stdout  # the FUSE export
    assert sha(src) == before


def _wait_for_partial(out, proc) -> None:
    for _ in range(300):
        if (out / "img.tar.partial").exists():
            return
        if proc.poll() is not None:
            raise AssertionError(proc.stderr.read().decode())
        time.sleep(0.05)
    raise AssertionError("archive never started")


@pytest.mark.parametrize("engine", ["kernel", "userspace"])
def test_output_full_midway_removes_the_partial_file(disks, tmp_path, engine, no_leaks):
    # The estimate counts used blocks; the 64 MiB sparse file expands in the tar, so a
    # 40 MiB output passes the free-space check and then fills up midway.
    with small_output(tmp_path, "40m") as small:
        proc = vm2c("archive", disks.get("full"), "-o", small, "--preset", "none", "--engine", engine)
        assert proc.returncode == 2, proc.stderr
        assert "output filesystem is full" in proc.stderr and "Traceback" not in proc.stderr
        assert list(small.iterdir()) == []


def test_a_bad_output_directory_is_the_first_error(disks, tmp_path, no_leaks):
    """-o naming a file, or a path under one, is refused in one line before the image is
    inspected or mounted; a conversion that fails later leaves no directory it made."""
    src = disks.get("demo")
    afile = tmp_path / "afile"
    afile.write_text("not a directory\n")
    for out, line in ((afile, f"{afile}: exists and is not a directory, so it cannot be the output directory"),
                      (afile / "sub", f"{afile}: exists and is not a directory, so it cannot be a parent of "
                                      f"{afile}/sub")):
        proc = vm2c("archive", src, "-o", out)
        assert proc.returncode == 2 and proc.stderr.splitlines() == [f"vm2c: {line}"], proc.stderr
    proc = vm2c("archive", src, "-o", tmp_path / "new/deep/out", "--root", "nosuch")
    assert proc.returncode == 2 and "no filesystem with id 'nosuch'" in proc.stderr, proc.stderr
    assert not (tmp_path / "new").exists()
    assert afile.read_text() == "not a directory\n"


def test_live_tree_one_file_system_excludes_output_and_lists_writers(tmp_path, no_leaks):
    from diskbuilder.tree import base_tree, freeze_mtimes, torture_tree

    tree = tmp_path / "live"
    tree.mkdir()
    base_tree(tree, hostname="live", fstab="")
    torture_tree(tree)
    (tree / "var/log/app.log").write_text("started\n")
    freeze_mtimes(tree)
    expected = tree_manifest({"/": tree})
    writer = subprocess.Popen([sys.executable, "-c",
                               "import sys,time; f=open(sys.argv[1],'a'); time.sleep(60)", str(tree / "var/log/app.log")])
    try:
        time.sleep(0.3)
        out = tree / "out"
        proc = vm2c("archive", tree, "-o", out, "--preset", "none", "--no-sanitize", check=True)
    finally:
        writer.kill()
        writer.wait()
    assert f"pid {writer.pid}" in proc.stderr and "stop them first" in proc.stderr
    got = tar_manifest(out / "img.tar")
    assert not any(p.startswith(b"./out") for p in got)
    # the entry count comes from vm2c's own walk (treescan.py), not from tar: it must agree
    assert f", {len(got)} entries in " in proc.stdout
    diffs = compare(expected, got, ignore=lambda p: p == b"." or os.path.basename(p).startswith(b".wh."))
    assert diffs == []
    dry = vm2c("archive", "/", "-o", "/srv/out", "--dry-run", check=True).stdout
    assert "--one-file-system" in dry and "--exclude=./srv/out" in dry and "--directory=/" in dry


def test_btrfs_root_in_a_subvolume_with_home_in_another(disks, tmp_path, no_leaks):
    # Ubuntu's layout: the default subvolume is the top level; / is @, /home is @home
    out = vm2c("inspect", disks.get("btrfs_subvol"), check=True).stdout
    assert "Root filesystem: p1, btrfs subvolume @ (Demo Linux 1.0 (vm2c))" in out
    vm2c("archive", disks.get("btrfs_subvol"), "-o", tmp_path / "out", "--preset", "none", "--no-sanitize",
         check=True)
    trees = disks.trees("btrfs_subvol")
    expected = tree_manifest({"/": trees / "root", "/home": trees / "home"})
    got = tar_manifest(tmp_path / "out" / "img.tar")
    # mkfs.btrfs-made subvolume roots get their own inode times: compare them by type only
    diffs = compare(expected, got, ignore=lambda p: p in (b".", b"./home"))
    assert diffs == []
    assert got[b"./home"]["type"] == "dir"


def test_dry_run_prints_the_commands_that_run(disks, tmp_path, no_leaks):
    """#20 item 3: the losetup and mount lines come from the same records (read/kernel/steps.py)
    for --dry-run and for the run itself: equal once devices and the private directory are named
    alike."""
    import re

    src = disks.get("mbr")
    env = {**os.environ, "VM2C_LOOP_DIRECT_IO": "0"}  # the page cache, read at each run, cannot differ
    ran = vm2c("--debug", "archive", src, "-o", tmp_path / "out", "--preset", "none", env=env, check=True).stderr
    shown = vm2c("archive", src, "-o", tmp_path / "dry", "--preset", "none", "--dry-run", env=env, check=True).stdout

    def norm(lines):
        """Each losetup with the mount that follows it, for mounts into the tree (the
        inspection's brief looks inside each filesystem mount elsewhere)."""
        out, pending = [], None
        for line in lines:
            line = re.sub(r'^LOOP\d+=\$\((.*)\)$', r"\1", line)
            line = re.sub(r'"\$LOOP\d+"|/dev/loop\d+', "DEV", line)
            line = re.sub(r"/tmp/vm2c-[^ ]*?/root\b|/tmp/vm2c-work/root\b", "TOP", line)
            if line.startswith("losetup -f"):
                pending = line
            elif line.startswith("mount -t") and " TOP" in line and pending:
                out += [pending, line]
                pending = None
        return out

    executed = norm(m.group(1) for m in re.finditer(r"vm2c\.run: run: (.*)", ran))
    printed = norm(shown.splitlines())
    assert printed and executed == printed
