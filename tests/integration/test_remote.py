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


def test_remote_convert_layer_equals_the_machine_entry_by_entry(remote_host, tmp_path, no_leaks):
    """What the issue asks of convert: the image's layer, as the daemon keeps it (`docker save`),
    equals the machine's tree entry by entry; ping keeps its capability in the daemon too."""
    import tarfile

    from conftest import docker_client
    from manifest import compare, tar_manifest, tree_manifest

    tag = "vm2c-test/remote:layer"
    _vm2c(remote_host, "convert", remote_host.url, "--tag", tag, "--preset", "none", "--no-sanitize", "--no-smoke",
          check=True)
    client = docker_client()
    saved = tmp_path / "saved.tar"
    with open(saved, "wb") as f:
        for chunk in client.images.get(tag).save(chunk_size=1 << 20):
            f.write(chunk)
    with tarfile.open(saved) as image:
        (layer,) = json.load(image.extractfile("manifest.json"))[0]["Layers"]
        image.extract(layer, tmp_path / "saved", filter="fully_trusted")
    got = tar_manifest(tmp_path / "saved" / layer)
    expected = tree_manifest({"/": remote_host.tree, "/srv": remote_host.srv_tree})
    diffs = compare(expected, got, ignore=_ignore)
    assert diffs == [], "\n".join(diffs[:40])
    assert got[b"./usr/bin/ping"]["xattrs"]["security.capability"]
    client.images.remove(tag, force=True)


def test_remote_dry_run_shows_the_exact_ssh_line(remote_host, tmp_path):
    out = tmp_path / "out"
    lines = _vm2c(remote_host, "archive", remote_host.url, "-o", out, "--dry-run", check=True).stdout.splitlines()
    ssh = lines[-1]
    assert ssh.startswith("ssh -F ") and " -- 127.0.0.1 'tar --verbose --create --file=-" in ssh
    assert "'--exclude=./proc/*'" in ssh and ssh.endswith(f"> {out}/img.tar")
    assert not out.exists()
    text = _vm2c(remote_host, "archive", remote_host.url, "-o", out, "--dry-run", "--stop-services", "cron,nginx",
                 check=True).stdout
    tar_at = text.index("'tar --verbose")  # the stop lines before it, one a service, as they run; one start after
    assert text.index("sh stop cron") < text.index("sh stop nginx") < tar_at < text.index("sh start nginx cron")
    assert text.count("sh -c '") == 3 and not out.exists()


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
    assert "connection was lost midway" in err.strip().splitlines()[-1], err  # the error is the last line
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


def test_remote_disk_image_is_read_in_place(remote_host, disks, tmp_path, no_leaks):
    """ssh://host/path/disk.qcow2 with qemu-nbd there: served read-only, forwarded through ssh,
    read here as a raw file (nothing copied); the same tar as from the local image, and nothing
    left running or made there afterwards."""
    from manifest import tar_manifest

    url = remote_host.url + "/srv/images/" + remote_host.disk.name
    doc = json.loads(_vm2c(remote_host, "inspect", url, "--json", check=True).stdout)
    assert doc["machine"]["kind"] == "ssh-view" and doc["root"] == "fs"
    assert any("read in place: qemu-nbd on" in w and "qcow2" in w for w in doc["warnings"]), doc["warnings"]
    _vm2c(remote_host, "archive", url, "-o", tmp_path / "r", "--preset", "none", check=True)
    vm2c("archive", remote_host.disk, "-o", tmp_path / "l", "--preset", "none", check=True)
    assert tar_manifest(tmp_path / "r" / "img.tar") == tar_manifest(tmp_path / "l" / "img.tar")
    left = remote_host.exec("sh", "-c", "ls -d /tmp/vm2c-nbd-* 2>/dev/null; "
                            "cat /proc/[0-9]*/comm 2>/dev/null | grep -x qemu-nbd || true").stdout
    assert left.strip() == b"", left  # its directory removed, qemu-nbd gone
    line = _one_line(_vm2c(remote_host, "inspect", remote_host.url + "/srv/nope.qcow2"))
    assert "No such file" in line


def test_remote_disk_view_dropped_midway_leaves_nothing(remote_host, tmp_path, no_leaks):
    """The ssh forward under a mounted view killed while tar reads: one line, exit 2, the view's
    FUSE file and loop devices released here, qemu-nbd and its directory gone there."""
    import os
    import subprocess
    import time

    from conftest import VM2C

    out, url = tmp_path / "out", remote_host.url + "/srv/images/" + remote_host.disk.name
    # read ahead, this 7 MiB image is all in the page cache before the kill (CI once saw tar
    # finish): without it, tar's paced reads are what reaches the link
    env = {**os.environ, "VM2C_READAHEAD": "0"}
    proc = subprocess.Popen([*VM2C, "--ssh-config", str(remote_host.config), "archive", url, "-o", str(out),
                             "--preset", "none", "--limit-rate", "1M"], stderr=subprocess.PIPE, text=True, env=env)
    for _ in range(600):
        if (out / "img.tar.partial").exists() and (out / "img.tar.partial").stat().st_size > (2 << 20):
            break
        time.sleep(0.05)
    # our ssh, its forward with it (the remote container shares this kernel: match only ssh itself)
    subprocess.run(["pkill", "-KILL", "-f", "^(/usr/bin/)?ssh .*vm2c-nbd-"], check=True)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2 and "Traceback" not in err, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("vm2c: the ssh link to qemu-nbd on 127.0.0.1") and "ended midway" in last, err
    assert "tar failed:" in last, err  # what failed, after what caused it
    assert not (out / "img.tar.partial").exists() and not (out / "img.tar").exists()
    for _ in range(50):  # the remote side ends on its own once the connection is gone
        left = remote_host.exec("sh", "-c", "ls -d /tmp/vm2c-nbd-* 2>/dev/null; "
                                "cat /proc/[0-9]*/comm 2>/dev/null | grep -x qemu-nbd || true").stdout
        if not left.strip():
            break
        time.sleep(0.2)
    assert left.strip() == b"", left


def test_remote_disk_image_is_copied_without_qemu_nbd_there(remote_host, disks, tmp_path, no_leaks):
    url = remote_host.url + "/srv/images/" + remote_host.disk.name
    with remote_host.replaced("/usr/bin/qemu-nbd", None):
        res = _vm2c(remote_host, "inspect", url, "--json", check=True)
    doc = json.loads(res.stdout)
    assert f"vm2c: copied {remote_host.disk.name} from 127.0.0.1:" in res.stderr  # the copy says how far
    assert doc["machine"]["kind"] == "ssh-disk" and doc["format"] == "qcow2" and doc["root"] == "fs"
    assert any("has no qemu-nbd: the image is copied" in w for w in doc["warnings"]), doc["warnings"]


def test_compressed_stream_gives_the_same_tar(remote_host, tmp_path, no_leaks):
    """--compress zstd|gzip: the remote's tar compresses, vm2c unpacks on the way in: the same
    entries as the plain stream; a compressor the remote lacks is one line."""
    from manifest import tar_manifest

    plain = tmp_path / "plain"
    _vm2c(remote_host, "archive", remote_host.url, "-o", plain, "--preset", "minimal", check=True)
    for tool in ("zstd", "gzip"):
        _vm2c(remote_host, "archive", remote_host.url, "-o", tmp_path / tool, "--preset", "minimal",
              "--compress", tool, check=True)
        assert tar_manifest(tmp_path / tool / "img.tar") == tar_manifest(plain / "img.tar"), tool
    dry = _vm2c(remote_host, "archive", remote_host.url, "-o", tmp_path / "d", "--compress", "zstd", "--dry-run",
                check=True).stdout.splitlines()[-1]
    assert " --zstd " in dry and dry.endswith(f"| zstd -dc > {tmp_path}/d/img.tar")
    with remote_host.replaced("/usr/bin/zstd", None):
        line = _one_line(_vm2c(remote_host, "archive", remote_host.url, "-o", tmp_path / "n", "--compress", "zstd"))
    assert "the remote has no zstd" in line
    assert "only for a machine over SSH" in _one_line(vm2c("archive", "/", "-o", tmp_path / "l", "--compress",
                                                           "gzip"))


BUSYBOX_TAR = 'case "$1" in --version) echo "tar (busybox) 1.36.1";; *) echo "tar: unknown option" >&2; exit 1;; esac'
OLD_TAR = ('case "$*" in *--xattrs*) echo "tar: unrecognized option --xattrs" >&2; exit 64;; '
           '--version) echo "tar (GNU tar) 1.26";; *) exec /usr/bin/tar.real "$@";; esac')


def test_a_remote_tar_that_cannot_is_one_line(remote_host, tmp_path):
    """No GNU tar there, or one that cannot read xattrs: said before anything is read, exit 2."""
    with remote_host.replaced("/usr/bin/tar", BUSYBOX_TAR):
        line = _one_line(_vm2c(remote_host, "archive", remote_host.url, "-o", tmp_path / "a"))
    assert "the remote has no GNU tar (tar (busybox) 1.36.1)" in line
    with remote_host.replaced("/usr/bin/tar", OLD_TAR):
        line = _one_line(_vm2c(remote_host, "inspect", remote_host.url))
    assert "cannot read xattrs" in line and "(GNU tar) 1.26" in line
    assert not (tmp_path / "a").exists()


def test_convert_dropped_midway_tags_no_image(remote_host, tmp_path, no_leaks):
    """The connection killed while the stream goes into `docker import`: one line, exit 2, and
    the daemon's half-received layer is not tagged (vm2c never ends the upload it could not finish)."""
    import subprocess
    import time

    from conftest import VM2C, docker_client

    tag = "vm2c-test/remote:dropped"
    proc = subprocess.Popen([*VM2C, "--ssh-config", str(remote_host.config), "convert", remote_host.url, "--tag", tag,
                             "--preset", "none", "--limit-rate", "1M"], stderr=subprocess.PIPE, text=True)
    for _ in range(300):
        if subprocess.run(["docker", "exec", remote_host.name, "pgrep", "-f", "tar --verbose"], env=remote_host.env,
                          capture_output=True).returncode == 0:
            break
        time.sleep(0.05)
    time.sleep(3)  # a few MiB into the daemon
    subprocess.run(["docker", "exec", remote_host.name, "pkill", "-KILL", "-f", "sshd: root"], env=remote_host.env)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2 and "Traceback" not in err, err
    assert "connection was lost midway" in err.strip().splitlines()[-1], err
    assert not docker_client().images.list(name=tag)


WRITER = """#!/bin/sh
# a service that writes while it runs: what --stop-services is for
case "$1" in
start) start-stop-daemon --start --background --make-pidfile --pidfile /run/vm2c-writer.pid --exec /bin/sh -- \\
         -c 'exec >> /var/log/vm2c-writer.log; while :; do date +%s.%N; sleep 0.05; done';;
stop) start-stop-daemon --stop --pidfile /run/vm2c-writer.pid --remove-pidfile --retry 5;;
*) exit 3;;
esac"""


def _writer_pid(host) -> str:
    return host.exec("sh", "-c", "kill -0 $(cat /run/vm2c-writer.pid) && cat /run/vm2c-writer.pid").stdout.decode().strip()


def test_stop_services_quiesces_the_tar_and_starts_them_again(remote_host, tmp_path, no_leaks):
    """--stop-services: stopped before tar reads, started after it, also when the run is
    interrupted; the log the service writes is still in the tar while it is not written."""
    import signal
    import subprocess
    import tarfile
    import time

    from conftest import VM2C

    remote_host.exec("sh", "-c", 'printf "%s\\n" "$1" > /etc/init.d/vm2c-writer && chmod 755 /etc/init.d/vm2c-writer '
                     '&& /etc/init.d/vm2c-writer start', "sh", WRITER)
    try:
        before = _writer_pid(remote_host)
        doc = json.loads(_vm2c(remote_host, "inspect", remote_host.url, "--json", check=True).stdout)
        assert any(w["path"] == "/var/log/vm2c-writer.log" for w in doc["writers"])
        out = tmp_path / "out"
        proc = _vm2c(remote_host, "archive", remote_host.url, "-o", out, "--stop-services", "vm2c-writer",
                     check=True)  # the container preset keeps /var/log
        assert "vm2c-writer stopped while tar read" in proc.stderr
        after = _writer_pid(remote_host)
        assert after and after != before  # running again, a new process
        with tarfile.open(out / "img.tar") as tar:
            logged = tar.extractfile("./var/log/vm2c-writer.log").read()
        current = remote_host.exec("cat", "/var/log/vm2c-writer.log").stdout
        assert current.startswith(logged) and len(current) > len(logged)  # it went on once started again

        slow = subprocess.Popen([*VM2C, "--ssh-config", str(remote_host.config), "archive", remote_host.url, "-o",
                                 str(tmp_path / "int"), "--preset", "none", "--limit-rate", "1M",
                                 "--stop-services", "vm2c-writer"], stderr=subprocess.PIPE, text=True)
        for _ in range(300):
            if (tmp_path / "int" / "img.tar.partial").exists():
                break
            time.sleep(0.05)
        time.sleep(1)
        assert remote_host.exec("sh", "-c", "test -f /run/vm2c-writer.pid || echo stopped").stdout == b"stopped\n"
        slow.send_signal(signal.SIGINT)  # Ctrl-C
        _, err = slow.communicate(timeout=60)
        assert slow.returncode != 0 and "Traceback" not in err, err
        assert _writer_pid(remote_host) not in ("", after)  # started again although the run was interrupted
        resumed = _writer_pid(remote_host)
        bad = _vm2c(remote_host, "archive", remote_host.url, "-o", tmp_path / "x", "--stop-services",
                    "vm2c-writer,no-such-service")
        assert bad.returncode == 2 and "Traceback" not in bad.stderr, bad.stderr
        assert "could not stop no-such-service" in bad.stderr.strip().splitlines()[-1]  # the error is the last line
        assert not (tmp_path / "x" / "img.tar").exists()
        assert _writer_pid(remote_host) not in ("", resumed)  # stopped before the other failed: started again
    finally:
        remote_host.exec("sh", "-c", "/etc/init.d/vm2c-writer stop; rm -f /etc/init.d/vm2c-writer "
                         "/var/log/vm2c-writer.log")


def test_services_over_ssh_read_like_its_disk(remote_host, debian_disk, tmp_path, no_leaks):
    """Issue 24 over SSH: the files reading its services needs come over in one tar; the answer
    is the one its disk image gives (the same Debian tree), its data sized by du there."""
    doc = validated("services", json.loads(_vm2c(remote_host, "services", remote_host.url, "--json",
                                                 check=True).stdout))
    disk = json.loads(vm2c("services", debian_disk, "--json", check=True).stdout)
    for key in ("init", "init_path", "services", "run_modes", "masks"):
        assert doc[key] == disk[key], key
    dirs = {d["path"]: d["bytes"] for d in doc["data_dirs"]}
    assert dirs["/srv"] > 0 and dirs["/var/www"] > 0  # /srv: the second filesystem mounted there
    run = json.loads(_vm2c(remote_host, "archive", remote_host.url, "-o", tmp_path / "out", "--preset", "minimal",
                           "--run", "service:ssh", "--json", check=True).stdout)["run"]
    assert run["ports"] == [22] and (tmp_path / "out" / "run" / "run.tar").is_file()  # a run layer over SSH
