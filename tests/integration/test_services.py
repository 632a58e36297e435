"""What a real Debian guest runs and running it that way (issue 24): debootstrap'ed with
systemd, nginx and sshd by the tests (tests/remotehost.py), made a GPT qcow2 disk by the disk
builder; `vm2c services` on both engines, `--run system` booted, `--run service:nginx`
answering HTTP inside its container, compose.yaml read by docker-compose."""

from __future__ import annotations

import contextlib
import json
import subprocess
from pathlib import Path

import docker
import jsonschema
import pytest
from conftest import validated, vm2c

K8S = json.loads((Path(__file__).parent.parent / "schemas" / "kubernetes.schema.json").read_text())


def test_services_of_a_debian_guest(debian_disk, no_leaks):
    doc = validated("services", json.loads(vm2c("services", debian_disk, "--json", check=True).stdout))
    assert doc["init"] == "systemd" and doc["init_path"] == "/usr/lib/systemd/systemd"  # merged /usr
    by = {s["name"]: s for s in doc["services"]}
    assert by["nginx.service"]["ports"] == [80] and by["ssh.service"]["ports"] == [22]
    assert by["vm2c-web.service"]["ports"] == [8080] and by["vm2c-web.service"]["user"] == "deploy"
    assert by["nginx.service"]["exec_start"][0].startswith("/usr/sbin/nginx")
    assert by["ssh.service"]["exec_start_pre"] == ["/usr/sbin/sshd -t"]
    assert by["ssh.service"]["runtime_directory"] == ["sshd"]
    dirs = {d["path"]: d for d in doc["data_dirs"]}
    assert "/var/www" in dirs and dirs["/var/www"]["bytes"] > 0 and "/home" in dirs
    assert {"system", "service:nginx", "service:ssh", "shell"} <= set(doc["run_modes"])
    assert {"getty@.service", "systemd-remount-fs.service", "systemd-fstab-generator"} <= set(doc["masks"])
    user = json.loads(vm2c("services", debian_disk, "--json", "--engine", "userspace", check=True).stdout)
    assert user == doc  # the user-space engine reads the same guest the same way
    text = vm2c("services", debian_disk, check=True).stdout
    assert "Init: systemd" in text and "nginx.service" in text and "/var/www" in text


def _yaml(path: Path) -> list:
    """PATH's YAML documents, read by Debian's PyYAML (docker-compose's own dependency)."""
    out = subprocess.run(["/usr/bin/python3", "-c", "import json, sys, yaml; "
                          "print(json.dumps(list(yaml.safe_load_all(open(sys.argv[1])))))", path],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out)


def _check_k8s(path: Path, ports: list[int]) -> None:
    docs = _yaml(path)
    for doc in docs:
        jsonschema.Draft202012Validator(K8S).validate(doc)
    work, service = docs[0], docs[-1]
    pod = work["spec"]["template"]["spec"]
    declared = {v["name"] for v in pod.get("volumes", [])} | \
        {c["metadata"]["name"] for c in work["spec"].get("volumeClaimTemplates", [])}
    assert {m["name"] for m in pod["containers"][0].get("volumeMounts", [])} <= declared  # each mount has a source
    assert work["spec"]["selector"]["matchLabels"] == work["spec"]["template"]["metadata"]["labels"] == \
        service["spec"]["selector"]
    assert [p["port"] for p in service["spec"]["ports"]] == ports


@contextlib.contextmanager
def _port_held(port: int):
    """PORT listened on here for the block's time (when something else already does, it is taken anyway)."""
    import socket

    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # past connections' TIME_WAIT
        try:
            sock.bind(("0.0.0.0", port))
            sock.listen()
        except OSError:
            pass
        yield


def _compose_up_boots(path: Path, service: dict) -> None:
    """`docker-compose up` of the written file: systemd boots, nginx answers on the published
    port from this machine, the data volume holds the guest's /home; `down -v` after."""
    import time
    import urllib.request

    project = ["docker-compose", "-p", "vm2ctest", "-f", path]
    subprocess.run([*project, "up", "-d"], check=True, capture_output=True, timeout=120)
    try:
        box = docker.from_env().containers.list(filters={"label": "com.docker.compose.project=vm2ctest"})[0]
        for _ in range(100):
            state = box.exec_run(["systemctl", "is-system-running"]).output.strip()
            if state in (b"running", b"degraded"):
                break
            time.sleep(0.2)
        assert state in (b"running", b"degraded"), state
        host = next(int(p.split(":")[0]) for p in service["ports"] if p.endswith(":80"))
        direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never a proxy's answer
        with direct.open(f"http://127.0.0.1:{host}/", timeout=10) as answer:
            assert answer.status == 200
        assert b"deploy" in box.exec_run(["ls", "/home"]).output  # the volume starts as the image's /home
    finally:
        subprocess.run([*project, "down", "-v"], capture_output=True, timeout=120)


def test_system_mode_boots_the_guests_init(debian_disk, dockerd, tmp_path, no_leaks):
    out, tag = tmp_path / "out", "vm2c-test/debian-system:1"
    doc = validated("archive", json.loads(vm2c("archive", debian_disk, "-o", out, "--run", "system", "--json",
                                               check=True).stdout))
    assert doc["run"]["mode"] == "system" and "/etc/machine-id" in doc["run"]["files"]
    assert (out / "run" / "run.tar").is_file() and "ADD run/run.tar /" in (out / "Dockerfile").read_text()
    with _port_held(80):  # this machine's own web server: compose.yaml publishes the guest's elsewhere
        built = vm2c("build", out, "--tag", tag, "--json")
    assert built.returncode == 0, built.stdout + built.stderr
    smoke = validated("build", json.loads(built.stdout))["smoke"]
    assert smoke["ok"] and smoke["mode"] == "system", smoke
    assert smoke["detail"][0] in ("systemctl is-system-running: running", "systemctl is-system-running: degraded")
    assert "nginx.service" in smoke["detail"][1] and "ssh.service" in smoke["detail"][1]  # active
    cfg = docker.from_env().images.get(tag).attrs["Config"]
    assert cfg["StopSignal"] == "SIGRTMIN+3" and "container=docker" in cfg["Env"]
    assert cfg["Cmd"] == ["/usr/lib/systemd/systemd"]
    subprocess.run(["docker-compose", "-f", out / "compose.yaml", "config", "-q"], check=True)  # the real reader
    compose = _yaml(out / "compose.yaml")[0]["services"]["debian-system"]
    assert compose["stop_signal"] == "SIGRTMIN+3" and "/run/lock" in compose["tmpfs"]
    assert "/sys/fs/cgroup:/sys/fs/cgroup:ro" in compose["volumes"]
    assert "10080:80" in compose["ports"] and "# 80 is taken here" in (out / "compose.yaml").read_text()
    _compose_up_boots(out / "compose.yaml", compose)
    _check_k8s(out / "kubernetes.yaml", [22, 80, 8080])
    vm2c("build", out, "--tag", tag + "-df", "--method", "dockerfile", "--no-smoke", check=True)  # ADD run/run.tar
    assert docker.from_env().images.get(tag + "-df").attrs["Config"]["StopSignal"] == "SIGRTMIN+3"


def test_export_keeps_what_the_run_mode_set(debian_disk, dockerd, tmp_path, no_leaks):
    """The slimming loop on a system-mode image: the one-layer result still stops with
    SIGRTMIN+3 and keeps its ports, volumes and environment (import's changes cannot set the
    signal; a build on top does, adding no layer)."""
    tag = "vm2c-test/debian-system:export"
    vm2c("convert", debian_disk, "--tag", tag, "--run", "system", "--no-smoke", check=True)
    client = docker.from_env()
    box = client.containers.create(tag, network_mode="none")
    try:
        doc = validated("export", json.loads(vm2c("export", box.id, "--tag", tag + "-slim", "--json",
                                                  check=True).stdout))
        assert doc["layers"] == 1
        before, after = client.images.get(tag).attrs["Config"], client.images.get(tag + "-slim").attrs["Config"]
        for key in ("StopSignal", "Env", "Cmd", "ExposedPorts", "Volumes", "Labels"):
            assert after.get(key) == before.get(key), key
        assert after["StopSignal"] == "SIGRTMIN+3"
    finally:
        box.remove(force=True)


def test_service_mode_answers_on_its_port(debian_disk, dockerd, tmp_path, no_leaks):
    tag = "vm2c-test/debian-nginx:1"
    res = vm2c("convert", debian_disk, "--tag", tag, "--run", "service:nginx", "--compose", tmp_path, "--json")
    assert res.returncode == 0, res.stdout + res.stderr
    doc = validated("convert", json.loads(res.stdout))
    assert doc["smoke"]["ok"] and doc["smoke"]["detail"][0].startswith("port 80 answers inside the container: HTTP/1.1 200")
    cfg = docker.from_env().images.get(tag).attrs["Config"]
    assert cfg["Entrypoint"] == ["/bin/bash", "/usr/local/sbin/vm2c-start"] and "80/tcp" in cfg["ExposedPorts"]
    assert "/var/www" in cfg["Volumes"]
    subprocess.run(["docker-compose", "-f", tmp_path / "compose.yaml", "config", "-q"], check=True)
    _check_k8s(tmp_path / "kubernetes.yaml", [80])


def test_a_users_service_runs_as_that_user(debian_disk, dockerd, tmp_path, no_leaks):
    """User=deploy with a RuntimeDirectory and an ExecStartPre: the image starts as root (no
    USER), makes /run/vm2c-web for deploy, and nginx answers on 8080 as uid 1000 (as the image's
    USER, the mkdir would have failed and the service never started)."""
    tag = "vm2c-test/debian-web:user"
    doc = validated("convert", json.loads(vm2c("convert", debian_disk, "--tag", tag, "--run", "service:vm2c-web",
                                               "--json", check=True).stdout))
    assert doc["smoke"]["ok"] and doc["smoke"]["detail"][0].startswith("port 8080 answers"), doc["smoke"]
    client = docker.from_env()
    assert not client.images.get(tag).attrs["Config"].get("User")
    box = client.containers.run(tag, detach=True, network_mode="none")
    try:
        import time

        for _ in range(50):
            status = box.exec_run(["cat", "/proc/1/status"]).output.decode()
            if "nginx" in status.splitlines()[0]:
                break
            time.sleep(0.1)
        uid = next(line.split()[1:] for line in status.splitlines() if line.startswith("Uid:"))
        assert "nginx" in status.splitlines()[0] and uid == ["1000"] * 4, status  # PID 1 is nginx, as deploy
    finally:
        box.remove(force=True)


def test_service_mode_saved_without_a_daemon_runs_once_loaded(debian_disk, dockerd, tmp_path, no_leaks):
    """No daemon: --save writes the run layer as the archive's second layer and the mode's config
    into its image config; loaded later, nginx answers as from the daemon's build."""
    import os
    import time

    tag, dest = "vm2c-test/debian-nginx:saved", tmp_path / "nginx.tar"
    env = {**os.environ, "DOCKER_HOST": f"unix://{tmp_path}/nothing.sock"}
    res = vm2c("convert", debian_disk, "--tag", tag, "--run", "service:nginx", "--save", dest, "--compose", tmp_path,
               env=env)
    assert res.returncode == 0 and "not smoke-tested (no daemon)" in res.stderr, res.stdout + res.stderr
    assert (tmp_path / "compose.yaml").is_file() and (tmp_path / "kubernetes.yaml").is_file()
    client = docker.from_env()
    with open(dest, "rb") as f:
        client.images.load(f.read())
    image = client.images.get(tag)
    cfg = image.attrs["Config"]
    assert cfg["Entrypoint"] == ["/bin/bash", "/usr/local/sbin/vm2c-start"] and "80/tcp" in cfg["ExposedPorts"]
    assert "/var/www" in cfg["Volumes"] and any(e.startswith("PATH=") for e in cfg["Env"])
    assert len(image.attrs["RootFS"]["Layers"]) == 2
    box = client.containers.run(tag, detach=True, network_mode="none")
    try:
        probe = ["bash", "-c", 'exec 3<>/dev/tcp/127.0.0.1/80; printf "GET / HTTP/1.0\\r\\n\\r\\n" >&3; head -1 <&3']
        for _ in range(50):
            out = box.exec_run(probe).output
            if out.startswith(b"HTTP/1.1 200"):
                break
            time.sleep(0.2)
        assert out.startswith(b"HTTP/1.1 200"), out
    finally:
        box.remove(force=True)
        client.images.remove(tag, force=True)


@pytest.mark.parametrize(("mode", "says"), [("service:nope", "no service 'nope'"), ("daemon", "one of system")])
def test_a_mode_the_guest_cannot_run_is_one_line(debian_disk, tmp_path, mode, says, no_leaks):
    res = vm2c("archive", debian_disk, "-o", tmp_path / "out", "--run", mode)
    assert res.returncode == 2 and says in res.stderr and len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert not (tmp_path / "out").exists()  # refused before the work


def test_the_dry_run_shows_the_run_line(debian_disk):
    text = vm2c("archive", debian_disk, "-o", "/tmp/never", "--dry-run", "--run", "system", check=True).stdout
    assert "docker build --build-arg BASE=vm2c/debian:latest -t vm2c/debian:latest /tmp/never/run" in text
    assert "docker run -d --name debian -v /sys/fs/cgroup:/sys/fs/cgroup:ro --tmpfs /run --tmpfs /run/lock" in text


def _dump(tmp_path, name: str, files: dict[str, str], links: dict[str, str]) -> Path:
    """An ext4 partition dump of a small guest tree (mkfs.ext4 -d): FILES' texts, LINKS' targets."""
    import os

    tree = tmp_path / f"{name}.tree"
    for path, text in files.items():
        (tree / path).parent.mkdir(parents=True, exist_ok=True)
        (tree / path).write_text(text)
    for path, target in links.items():
        (tree / path).parent.mkdir(parents=True, exist_ok=True)
        os.symlink(target, tree / path)
    dump = tmp_path / f"{name}.ext4"
    subprocess.run(["mkfs.ext4", "-q", "-F", "-d", tree, dump, "16M"], check=True)
    return dump


def test_sysvinit_busybox_and_no_init_guests_on_real_filesystems(disks, dockerd, tmp_path, no_leaks):
    release = {"etc/os-release": 'NAME="Test"\nID=test\n', "bin/sh": "#!/bin/false\n"}
    sysv = _dump(tmp_path, "sysv", {**release, "sbin/init": "elf", "etc/inittab": "id:2:initdefault:\n",
                                    "etc/init.d/nginx": "#!/bin/sh\n",
                                    "etc/nginx/nginx.conf": "http { server { listen 8080; } }\n"},
                 {"etc/rc2.d/S01nginx": "../init.d/nginx"})
    doc = validated("services", json.loads(vm2c("services", sysv, "--json", check=True).stdout))
    assert doc["init"] == "sysvinit" and [(s["name"], s["manager"], s["ports"]) for s in doc["services"]] == \
        [("nginx", "sysv", [8080])]
    bare = _dump(tmp_path, "bare", release, {})
    doc = validated("services", json.loads(vm2c("services", bare, "--json", check=True).stdout))
    assert doc["init"] == "none" and doc["run_modes"] == ["shell"]  # no init: only a shell to offer
    res = vm2c("archive", bare, "-o", tmp_path / "out", "--run", "system")
    assert res.returncode == 2 and "the guest has no init (this guest offers: shell)" in res.stderr
    demo = disks.get("demo", "qcow2")  # busybox's init, as Alpine-like guests have
    assert json.loads(vm2c("services", demo, "--json", check=True).stdout)["init"] == "busybox"
    res = vm2c("convert", demo, "--tag", "vm2c-test/busybox:system", "--run", "system", "--json")
    assert res.returncode == 0, res.stdout + res.stderr
    smoke = json.loads(res.stdout)["smoke"]
    assert smoke["ok"] and "busybox init" in smoke["detail"][0]
    assert docker.from_env().images.get("vm2c-test/busybox:system").attrs["Config"]["Cmd"] == ["/sbin/init"]


def test_a_failed_smoke_test_is_said_and_the_image_kept(debian_disk, dockerd, no_leaks):
    """logind needs D-Bus, which a one-service container has not: it exits, the smoke test says so."""
    tag = "vm2c-test/debian-logind:1"
    res = vm2c("convert", debian_disk, "--tag", tag, "--run", "service:systemd-logind")
    assert res.returncode == 3, res.stdout + res.stderr
    assert "smoke test of --run service:systemd-logind: FAILED -- the image is kept" in res.stdout
    assert "FAILED: exited: Failed to fully start up daemon" in res.stdout or "system bus" in res.stdout
    assert docker.from_env().images.get(tag)  # kept


def test_a_service_that_exits_at_once_fails_its_smoke_test(debian_disk, dockerd, tmp_path, no_leaks):
    """nginx with a broken configuration: its ExecStartPre check ends the start script before the
    smoke test looks; gone before its pid was read, it had been "started; port not checked"."""
    from diskbuilder import build as b
    from vm2c_tui.read.kernel.inspect import inspect_image

    raw = tmp_path / "broken.raw"
    subprocess.run(["qemu-img", "convert", "-O", "raw", debian_disk, raw], check=True)
    root = next(v for v in inspect_image(raw, look_inside=False).filesystems() if v.fstype == "ext4")
    with b.loop(raw, root.offset, root.size) as dev:
        mnt = tmp_path / "mnt"
        mnt.mkdir()
        b.sh("mount", dev, str(mnt))
        try:
            with open(mnt / "etc/nginx/nginx.conf", "a") as f:
                f.write("this is not nginx;\n")
        finally:
            b.sh("umount", str(mnt))
    res = vm2c("convert", raw, "--tag", "vm2c-test/debian-nginx:broken", "--run", "service:nginx", "--json")
    assert res.returncode == 3, res.stdout + res.stderr
    smoke = json.loads(res.stdout)["smoke"]
    assert not smoke["ok"] and smoke["detail"][0].startswith("FAILED: exited"), smoke
    assert "nginx.conf test failed" in smoke["detail"][0], smoke  # its last words, whichever check saw it go


def test_data_on_their_own_filesystems_are_seen_by_both_engines(disks, no_leaks):
    """/home on its own LV: the user-space engine enters it as the kernel route's mounted tree
    does (it read the root filesystem alone, whose /home is an empty mount point)."""
    disk = str(disks.get("full"))
    kernel = json.loads(vm2c("services", disk, "--json", "--engine", "kernel", check=True).stdout)
    user = json.loads(vm2c("services", disk, "--json", "--engine", "userspace", check=True).stdout)
    for doc in (kernel, user):
        home = {d["path"]: d for d in doc["data_dirs"]}.get("/home")
        assert home and home["bytes"] > 0, doc["data_dirs"]
    # sizes differ by design: the kernel route counts allocated blocks (du), user space file sizes
    assert [d["path"] for d in user.pop("data_dirs")] == [d["path"] for d in kernel.pop("data_dirs")]
    assert user == kernel
