"""A real remote machine for the SSH tests (issue 23): a debootstrap'ed Debian 12 tree (cached
by this file's content), imported into the test dockerd and run with --network host, sshd on a
free port of 127.0.0.1, a second filesystem (a loop-mounted ext4) at /srv. The client side is a
private HOME with its own key, ssh config and known_hosts: the operator's setup, in miniature."""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

PACKAGES = "openssh-server,iputils-ping,libcap2-bin,sudo,zstd,systemd-sysv,nginx-light,qemu-utils"
USERS = {"deploy": "NOPASSWD: ALL", "guest": "ALL"}  # sudo without a password; sudo that wants one


# A service with User= (issue 24's service mode runs it as that user): nginx as deploy on 8080,
# its pid and temp files in its RuntimeDirectory, its config checked by an ExecStartPre.
WEB_UNIT = """[Unit]
Description=vm2c test: a web server run as a user
[Service]
User=deploy
Group=deploy
RuntimeDirectory=vm2c-web
ExecStartPre=/usr/sbin/nginx -t -q -e stderr -c /etc/vm2c-web.conf
ExecStart=/usr/sbin/nginx -e stderr -c /etc/vm2c-web.conf -g 'daemon off;'
[Install]
WantedBy=multi-user.target
"""
WEB_CONF = """pid /run/vm2c-web/nginx.pid;
events {}
http {
    access_log off;
    client_body_temp_path /run/vm2c-web/body;
    proxy_temp_path /run/vm2c-web/proxy;
    fastcgi_temp_path /run/vm2c-web/fastcgi;
    uwsgi_temp_path /run/vm2c-web/uwsgi;
    scgi_temp_path /run/vm2c-web/scgi;
    server { listen 8080; root /var/www/html; }
}
"""


def _key() -> str:
    """The tree's cache key: what builds it (not the rest of this file, whose edits need no new tree)."""
    recipe = inspect.getsource(debian_tree) + PACKAGES + repr(USERS) + WEB_UNIT + WEB_CONF
    return hashlib.sha256(recipe.encode()).hexdigest()[:12]


def _mirror() -> str:
    for f in ("/etc/apt/sources.list.d/debian.sources", "/etc/apt/sources.list"):
        try:
            for line in Path(f).read_text().splitlines():
                if line.startswith("URIs:"):
                    return line.split()[1]
                if line.startswith("deb ") and "debian" in line:
                    return line.split()[1]
        except OSError:
            continue
    return "http://deb.debian.org/debian"


def debian_tree(cache: Path) -> Path:
    """Debian 12 minbase with sshd, ping (setcap'd by its package) and a user; built once."""
    root = cache / f"remote-{_key()}"
    tree = root / "tree"
    if (root / ".done").exists():
        return tree
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    subprocess.run(["debootstrap", "--variant=minbase", f"--include={PACKAGES}", "bookworm", str(tree), _mirror()],
                   check=True, capture_output=True)
    for uid, (name, rule) in enumerate(USERS.items(), 1000):
        subprocess.run(["chroot", str(tree), "useradd", "-m", "-u", str(uid), "-U", "-s", "/bin/bash", "-p", "*", name],
                       check=True)
        (tree / f"home/{name}/.ssh").mkdir(mode=0o700)
        os.chown(tree / f"home/{name}/.ssh", uid, uid)
        (tree / f"etc/sudoers.d/{name}").write_text(f"{name} ALL=(ALL) {rule}\n")
        os.chmod(tree / f"etc/sudoers.d/{name}", 0o440)
    (tree / "home/deploy/notes.txt").write_text("the operator's notes\n")
    os.chown(tree / "home/deploy/notes.txt", 1000, 1000)
    (tree / "root/.ssh").mkdir(mode=0o700, exist_ok=True)
    (tree / "etc/systemd/system/vm2c-web.service").write_text(WEB_UNIT)
    (tree / "etc/vm2c-web.conf").write_text(WEB_CONF)
    os.symlink("/etc/systemd/system/vm2c-web.service", tree / "etc/systemd/system/multi-user.target.wants/vm2c-web.service")
    for junk in tree.glob("var/cache/apt/archives/*.deb"):
        junk.unlink()
    (root / ".done").touch()
    return tree


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RemoteHost:
    def __init__(self, cache: Path, work: Path, docker_host: str, disk: Path):
        self.tree, self.work, self.env = debian_tree(cache), work, {**os.environ, "DOCKER_HOST": docker_host}
        self.port, self.name = _free_port(), f"vm2c-remote-{os.getpid()}"
        self.home = work / "home"
        self.srv_img, self.srv = work / "srv.img", work / "srv"
        self.srv_tree = work / "srv-tree"
        self.disk = disk  # put at /srv/images/ on the remote

    def _docker(self, *args, **kw) -> subprocess.CompletedProcess:
        return subprocess.run(["docker", *args], env=self.env, check=True, capture_output=True, **kw)

    def start(self) -> RemoteHost:
        self.srv_tree.mkdir()
        (self.srv_tree / "site").mkdir()
        (self.srv_tree / "site/index.html").write_text("<h1>served from /srv</h1>\n")
        (self.srv_tree / "images").mkdir()
        shutil.copy2(self.disk, self.srv_tree / "images" / self.disk.name)
        subprocess.run(["mkfs.ext4", "-q", "-F", "-d", str(self.srv_tree), str(self.srv_img), "24M"], check=True)
        self.srv.mkdir()
        subprocess.run(["mount", "-o", "loop", str(self.srv_img), str(self.srv)], check=True)
        tar = subprocess.Popen(["tar", "-C", str(self.tree), "--numeric-owner", "--xattrs", "--xattrs-include=*",
                                "-cf", "-", "."], stdout=subprocess.PIPE)
        self._docker("import", "-", "vm2c-test/remote:1", stdin=tar.stdout)
        tar.wait()
        self._client()
        self._docker("run", "-d", "--rm", "--name", self.name, "--network", "host", "--tmpfs", "/run",
                     "-v", f"{self.srv}:/srv", *self._keys(),
                     "vm2c-test/remote:1", "sh", "-c",
                     f"mkdir -p /run/sshd && exec /usr/sbin/sshd -D -e -p {self.port} -o ListenAddress=127.0.0.1 "
                     f"-o PermitRootLogin=prohibit-password -o UsePAM=no")
        for _ in range(100):
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return self
            time.sleep(0.1)
        raise RuntimeError("the remote's sshd did not start")

    def _keys(self) -> list[str]:
        pub = f"{self.home}/.ssh/id_ed25519.pub"
        return [a for home in ["/root", *(f"/home/{u}" for u in USERS)]
                for a in ("-v", f"{pub}:{home}/.ssh/authorized_keys:ro")]

    def _client(self) -> None:
        ssh = self.home / ".ssh"
        ssh.mkdir(parents=True, mode=0o700)
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(ssh / "id_ed25519")], check=True)
        host_key = (self.tree / "etc/ssh/ssh_host_ed25519_key.pub").read_text().split()
        (ssh / "known_hosts").write_text(f"[127.0.0.1]:{self.port} {host_key[0]} {host_key[1]}\n")
        (ssh / "config").write_text(f"Host *\n  IdentitiesOnly yes\n  IdentityFile {ssh / 'id_ed25519'}\n"
                                    f"  UserKnownHostsFile {ssh / 'known_hosts'}\n")

    @property
    def url(self) -> str:
        return self.url_as("root")

    def url_as(self, user: str) -> str:
        return f"ssh://{user}@127.0.0.1:{self.port}"

    @property
    def config(self) -> Path:
        """ssh -F: ssh reads ~ from the password database, not $HOME, so the tests name the file."""
        return self.home / ".ssh" / "config"

    def exec(self, *cmd: str) -> subprocess.CompletedProcess:
        return self._docker("exec", self.name, *cmd)

    @contextlib.contextmanager
    def replaced(self, path: str, script: str | None):
        """PATH on the remote replaced by a shell SCRIPT (None: gone) for the test's time; the
        real one is at PATH.real meanwhile (a script can still call it)."""
        self.exec("mv", path, path + ".real")
        try:
            if script is not None:
                self.exec("sh", "-c", 'printf "%s\\n" "$1" > "$2" && chmod 755 "$2"', "sh", script, path)
            yield
        finally:
            self.exec("sh", "-c", 'rm -f "$1" && mv "$1.real" "$1"', "sh", path)

    def stop(self) -> None:
        subprocess.run(["docker", "rm", "-f", self.name], env=self.env, capture_output=True)
        subprocess.run(["umount", str(self.srv)], capture_output=True)
