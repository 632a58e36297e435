"""A machine over SSH: `ssh://[user@]host[:port]`, reached with the system's `ssh` client.

The system client rather than a library: the operator's ~/.ssh/config (aliases, jump hosts,
identities), agent and known_hosts work as they do for `ssh` itself, and nothing new holds keys.
It runs with BatchMode (never a password or passphrase prompt that would hang a wizard) and
StrictHostKeyChecking=yes: an unknown or changed host key is refused, with the key's fingerprint
(ssh-keyscan) so the operator can check it and add it. The remote command is one string, since
ssh hands it to the remote shell: every word of it is quoted with shlex.quote, never pasted.
"""

from __future__ import annotations

import os
import re
import shlex
from dataclasses import dataclass
from urllib.parse import unquote

from vm2c_tui.errors import Vm2cError
from vm2c_tui.host.run import run, which

URL = re.compile(r"^ssh://(?:(?P<user>[^@/:\s]+)@)?(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+)(?::(?P<port>\d{1,5}))?"
                 r"(?P<path>/[^\0]*)?$")
CONNECT_TIMEOUT = 15


class SshError(Vm2cError):
    """The remote could not be reached, or refused us (host key, authentication)."""


def is_remote(source) -> bool:
    """An ssh:// source: a running machine, or (with a path) a disk image on one."""
    return isinstance(source, str) and source.startswith("ssh://")


def is_remote_machine(source) -> bool:
    """ssh://[user@]host[:port]: the running machine itself (a path names a disk image there)."""
    return is_remote(source) and not Remote.parse(source).path


@dataclass(frozen=True)
class Remote:
    host: str
    user: str = ""
    port: int = 0
    sudo: bool = False  # run the remote commands through sudo -n (never a password prompt)
    path: str = ""  # a disk image on the remote (ssh://host/srv/vm.qcow2), "" for the machine itself

    @classmethod
    def parse(cls, url: str, sudo: bool = False) -> Remote:
        m = URL.match(url)
        if not m:
            raise Vm2cError(f"{url}: not an ssh://[user@]host[:port][/path/to/disk] address")
        port = int(m.group("port") or 0)
        if port > 65535:
            raise Vm2cError(f"{url}: port {port} is out of range")
        user = unquote(m.group("user") or "")
        if user.startswith("-") or m.group("host").startswith("-"):
            raise Vm2cError(f"{url}: a user or host starting with '-' would be read by ssh as an option")
        path = unquote(m.group("path") or "").rstrip("/") if (m.group("path") or "/") != "/" else ""
        return cls(m.group("host").strip("[]"), user, port, sudo, path)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"ssh://{self.user + '@' if self.user else ''}{host}{':' + str(self.port) if self.port else ''}{self.path}"

    def argv(self, remote_cmd: list[str]) -> list[str]:
        """ssh running REMOTE_CMD (each word quoted for the remote shell)."""
        opts = ["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes", "-o", f"ConnectTimeout={CONNECT_TIMEOUT}",
                "-o", "ServerAliveInterval=15", "-o", "ServerAliveCountMax=4", "-T", "-x", "-a"]
        if os.environ.get("VM2C_SSH_CONFIG"):  # vm2c --ssh-config FILE
            opts = ["-F", os.environ["VM2C_SSH_CONFIG"], *opts]
        if self.port:
            opts += ["-p", str(self.port)]
        if self.user:
            opts += ["-l", self.user]
        if self.sudo:
            remote_cmd = ["sudo", "-n", "--", *remote_cmd]
        return ["ssh", *opts, "--", self.host, shlex.join(remote_cmd)]

    def run(self, remote_cmd: list[str], *, timeout: float = 120, input: bytes | None = None) -> bytes:
        """REMOTE_CMD's stdout; an ssh failure (exit 255) or the command's is one clear line."""
        if not which("ssh"):
            raise Vm2cError("ssh (the OpenSSH client) is not installed: apt-get install openssh-client")
        proc = run(self.argv(remote_cmd), check=False, timeout=timeout, input=input)
        if proc.returncode == 255:
            raise self.explain(proc.stderr.decode(errors="replace"))
        if proc.returncode != 0:
            raise self.failed(remote_cmd[0], proc.stderr.decode(errors="replace"), proc.returncode)
        return proc.stdout

    def failed(self, what: str, stderr: str, rc: int) -> Vm2cError:
        """A remote command's failure as one line (sudo wanting a password said as such)."""
        if self.sudo and "a password is required" in stderr:
            return Vm2cError(f"{self.url}: sudo wants a password there; vm2c runs sudo -n and never types one: let "
                             f"this user run it without (NOPASSWD), or log in as root")
        err = [l for l in stderr.strip().splitlines() if l.strip()]
        return Vm2cError(f"{self.url}: {what} failed on the remote: {err[-1] if err else f'exit status {rc}'}")

    def explain(self, stderr: str) -> SshError:
        """ssh's own failure (exit 255) as one line that says what to do."""
        lines = [l.strip() for l in stderr.splitlines() if l.strip() and not l.startswith("Warning: Permanently")]
        text = " ".join(lines)
        if "REMOTE HOST IDENTIFICATION HAS CHANGED" in text:
            return SshError(f"{self.url}: its host key has CHANGED since it was recorded in known_hosts "
                            f"({self.fingerprint() or 'fingerprint unavailable'}); refusing to connect (a different "
                            f"machine, or someone in between)")
        if "Host key verification failed" in text or "No host key is known" in text:
            fp = self.fingerprint() or "fingerprint unavailable"
            scan = shlex.join(["ssh-keyscan", *(["-p", str(self.port)] if self.port else []), self.host])
            return SshError(f"{self.url}: its host key is not in known_hosts ({fp}); check it, then add it: "
                            f"{scan} >> ~/.ssh/known_hosts")
        if "Permission denied" in text:
            return SshError(f"{self.url}: authentication refused ({lines[-1]}); vm2c uses your ssh keys and agent, "
                            f"never a password")
        return SshError(f"{self.url}: ssh failed: {lines[-1] if lines else 'exit status 255'}")

    def fingerprint(self) -> str:
        """The host's key fingerprints as ssh-keyscan sees them (for the operator to compare)."""
        if not which("ssh-keyscan") or not which("ssh-keygen"):
            return ""
        scan = ["ssh-keyscan", "-T", "5", *(["-p", str(self.port)] if self.port else []), "--", self.host]
        keys = run(scan, check=False, timeout=20).stdout
        if not keys:
            return ""
        fps = run(["ssh-keygen", "-l", "-f", "-"], input=keys, check=False, timeout=20).stdout
        return "; ".join(" ".join(l.split()[1:2] + l.split()[-1:]) for l in fps.decode().splitlines()[:3])
