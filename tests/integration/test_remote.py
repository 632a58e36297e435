"""Remote machines over SSH (issue 23): a real sshd in a container of a Debian tree."""

from __future__ import annotations

import json

from conftest import validated, vm2c


def _vm2c(host, *args, **kw):
    return vm2c("--ssh-config", host.config, *args, **kw)


def test_remote_inspect_lists_its_filesystems(remote_host):
    doc = validated("inspect_remote", json.loads(_vm2c(remote_host, "inspect", remote_host.url, "--json",
                                                       check=True).stdout))
    by_mp = {m["mountpoint"]: m for m in doc["mounts"]}
    assert doc["os"]["id"] == "debian" and "GNU tar" in doc["tar"]
    assert by_mp["/"]["archived"] and by_mp["/srv"]["archived"] and by_mp["/srv"]["fstype"] == "ext4"
    assert not by_mp["/proc"]["archived"] and by_mp["/run"]["why"]
    assert by_mp["/srv"]["used"] > 0
    assert 100 << 20 < by_mp["/"]["used"] < 1 << 30  # the container's own tree (du), not its host's df


DOCKER_OWN = (b"./proc", b"./sys", b"./dev", b"./run", b"./etc/hosts", b"./etc/hostname", b"./etc/resolv.conf",
              b"./.dockerenv", b"./etc/mtab", b"./root/.ssh/authorized_keys", b"./home/deploy/.ssh/authorized_keys",
              b"./home/guest/.ssh/authorized_keys")
TOUCHED = {b".", b"./etc", b"./root/.ssh", b"./home/deploy/.ssh", b"./home/guest/.ssh"}  # Docker adds its files there


def _ignore(p: bytes) -> bool:
    """Docker's own files in the container (bind mounts, its marker) and kernel mounts: not the
    machine's; the root directory's time (Docker touches it); fsck's lost+found."""
    return p in TOUCHED or any(p == d or p.startswith(d + b"/") for d in DOCKER_OWN) or p.endswith(b"lost+found")


def test_remote_archive_equals_the_machine_entry_by_entry(remote_host, tmp_path, no_leaks):
    from manifest import compare, tar_manifest, tree_manifest

    out = tmp_path / "out"
    proc = _vm2c(remote_host, "archive", remote_host.url, "-o", out, "--preset", "none", "--no-sanitize", check=True)
    got = tar_manifest(out / "img.tar")
    expected = tree_manifest({"/": remote_host.tree, "/srv": remote_host.srv_tree})
    diffs = compare(expected, got, ignore=_ignore)
    assert diffs == [], "\n".join(diffs)
    assert got[b"./usr/bin/ping"]["xattrs"]["security.capability"]  # ping keeps its capability
    assert got[b"./home/deploy/notes.txt"]["uid"] == 1000
    assert got[b"./srv/site/index.html"]["type"] == "file"  # the second filesystem, its own tree
    assert "mounted" not in proc.stderr or "/srv" in proc.stderr


def test_remote_convert_streams_into_the_daemon(remote_host, tmp_path, no_leaks):
    from conftest import docker_client

    _vm2c(remote_host, "convert", remote_host.url, "--tag", "vm2c-test/remote:conv", check=True)
    c = docker_client()
    out = c.containers.run("vm2c-test/remote:conv", ["cat", "/srv/site/index.html"], remove=True, network_mode="none")
    assert b"served from /srv" in out
    assert not (tmp_path / "img.tar").exists()  # no tar on either side


def test_remote_dry_run_shows_the_exact_ssh_line(remote_host, tmp_path):
    out = tmp_path / "out"
    lines = _vm2c(remote_host, "archive", remote_host.url, "-o", out, "--dry-run", check=True).stdout.splitlines()
    ssh = lines[-1]
    assert ssh.startswith("ssh -F ") and " -- 127.0.0.1 'tar --verbose --create --file=-" in ssh
    assert "'--exclude=./proc/*'" in ssh and ssh.endswith(f"> {out}/img.tar")
    assert not out.exists()


def _one_line(proc) -> str:
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    return lines[0]


def test_unknown_host_key_is_refused_with_its_fingerprint(remote_host, tmp_path):
    cfg = tmp_path / "config"
    (tmp_path / "empty").write_text("")
    cfg.write_text(remote_host.config.read_text().replace(str(remote_host.home / ".ssh/known_hosts"),
                                                          str(tmp_path / "empty")))
    line = _one_line(vm2c("--ssh-config", cfg, "inspect", remote_host.url))
    assert "host key is not in known_hosts" in line and "SHA256:" in line and "ssh-keyscan -p" in line


def test_connection_refused_is_one_line(remote_host, tmp_path):
    from remotehost import _free_port

    line = _one_line(_vm2c(remote_host, "inspect", f"ssh://root@127.0.0.1:{_free_port()}"))
    assert "Connection refused" in line


def test_connection_dropped_midway_leaves_nothing(remote_host, tmp_path, no_leaks):
    import subprocess
    import time

    from conftest import VM2C

    out = tmp_path / "out"
    proc = subprocess.Popen([*VM2C, "--ssh-config", str(remote_host.config), "archive", remote_host.url, "-o",
                             str(out), "--preset", "none", "--limit-rate", "1M"], stderr=subprocess.PIPE, text=True)
    for _ in range(300):
        if (out / "img.tar.partial").exists() and (out / "img.tar.partial").stat().st_size > (2 << 20):
            break
        time.sleep(0.05)
    subprocess.run(["docker", "exec", remote_host.name, "pkill", "-KILL", "-f", "sshd: root"], env=remote_host.env)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2 and "Traceback" not in err, err
    assert "closed by remote host" in err.strip().splitlines()[-1], err  # the error is the last line
    assert not (out / "img.tar.partial").exists() and not (out / "img.tar").exists()


def test_sudo_reads_the_machine_as_root(remote_host, tmp_path, no_leaks):
    plain = json.loads(_vm2c(remote_host, "inspect", remote_host.url_as("deploy"), "--json", check=True).stdout)
    assert plain["uid"] == 1000 and any("not root" in w for w in plain["warnings"])
    doc = json.loads(_vm2c(remote_host, "inspect", remote_host.url_as("deploy"), "--sudo", "--json",
                           check=True).stdout)
    assert doc["uid"] == 0 and not any("not root" in w for w in doc["warnings"])
    out = tmp_path / "out"
    _vm2c(remote_host, "archive", remote_host.url_as("deploy"), "--sudo", "-o", out, "--preset", "none", check=True)
    import tarfile

    with tarfile.open(out / "img.tar") as tar:
        assert b"root:" in tar.extractfile("./etc/shadow").read()  # only root may read it


def test_sudo_wanting_a_password_is_one_line(remote_host, tmp_path):
    line = _one_line(_vm2c(remote_host, "inspect", remote_host.url_as("guest"), "--sudo"))
    assert "sudo wants a password" in line


def test_remote_disk_image_is_copied_then_read(remote_host, disks, tmp_path, no_leaks):
    """ssh://host/path/disk.qcow2: copied through ssh into a private file, then inspected and
    archived as a local image; the same tar as from the local copy of that image."""
    from manifest import tar_manifest

    url = remote_host.url + "/srv/images/" + remote_host.disk.name
    doc = json.loads(_vm2c(remote_host, "inspect", url, "--json", check=True).stdout)
    assert doc["machine"]["kind"] == "ssh-disk" and doc["format"] == "qcow2" and doc["root"] == "fs"
    _vm2c(remote_host, "archive", url, "-o", tmp_path / "r", "--preset", "none", check=True)
    vm2c("archive", remote_host.disk, "-o", tmp_path / "l", "--preset", "none", check=True)
    assert tar_manifest(tmp_path / "r" / "img.tar") == tar_manifest(tmp_path / "l" / "img.tar")
    line = _one_line(_vm2c(remote_host, "inspect", remote_host.url + "/srv/nope.qcow2"))
    assert "stat failed on the remote" in line and "No such file" in line
