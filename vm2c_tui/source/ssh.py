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
from pathlib import Path
from urllib.parse import unquote

from vm2c_tui.errors import Vm2cError
from vm2c_tui.host.run import run, which

URL = re.compile(r"^ssh://(?:(?P<user>[^@/:\s]+)@)?(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+)(?::(?P<port>\d{1,5}))?"
                 r"(?P<path>/[^\0]*)?$")
CONNECT_TIMEOUT = 15
# What ssh prints when an open session's link goes: which one depends on who notices first.
DROPPED = ("closed by remote host", "Broken pipe", "Connection reset", "server not responding")
SERVICE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9@._:+-]{0,254}$")  # a unit or init script's name

# stop|start each named service with what the remote has: systemd, SysV's service (also an init
# script where no init runs), OpenRC. The names arrive as arguments, never inside the script.
SERVICES = r"""
act=$1; shift
for s in "$@"; do
  if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then systemctl "$act" -- "$s"
  elif command -v rc-service >/dev/null 2>&1; then rc-service "$s" "$act"
  elif command -v service >/dev/null 2>&1; then service "$s" "$act"
  elif [ -x "/etc/init.d/$s" ]; then "/etc/init.d/$s" "$act"
  else echo "no systemctl, rc-service or service to $act $s with" >&2; exit 3
  fi || { echo "could not $act $s" >&2; exit 4; }
done
"""


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

    @property
    def port_args(self) -> list[str]:
        """-p PORT, as ssh, ssh-keyscan and ssh -G all take it."""
        return ["-p", str(self.port)] if self.port else []

    @staticmethod
    def config_args() -> list[str]:
        """-F FILE for vm2c --ssh-config FILE (ssh itself and ssh -G)."""
        return ["-F", os.environ["VM2C_SSH_CONFIG"]] if os.environ.get("VM2C_SSH_CONFIG") else []

    def argv(self, remote_cmd: list[str], forward: tuple[str, str] | None = None) -> list[str]:
        """ssh running REMOTE_CMD (each word quoted for the remote shell); FORWARD: (a local unix
        socket, the remote one it reaches), refused at once if ssh cannot set it up."""
        opts = [*self.config_args(), "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
                "-o", f"ConnectTimeout={CONNECT_TIMEOUT}", "-o", "ServerAliveInterval=15", "-o", "ServerAliveCountMax=4",
                "-T", "-x", "-a", *self.port_args]
        if forward:
            opts += ["-o", "ExitOnForwardFailure=yes", "-L", f"{forward[0]}:{forward[1]}"]
        if self.user:
            opts += ["-l", self.user]
        if self.sudo:
            remote_cmd = ["sudo", "-n", "--", *remote_cmd]
        return ["ssh", *opts, "--", self.host, shlex.join(remote_cmd)]

    def run(self, remote_cmd: list[str], *, timeout: float = 120, input: bytes | None = None, what: str = "") -> bytes:
        """REMOTE_CMD's stdout; an ssh failure (exit 255) or the command's is one clear line."""
        if not which("ssh"):
            raise Vm2cError("ssh (the OpenSSH client) is not installed: apt-get install openssh-client")
        proc = run(self.argv(remote_cmd), check=False, timeout=timeout, input=input)
        if proc.returncode == 255:
            raise self.explain(proc.stderr.decode(errors="replace"))
        if proc.returncode != 0:
            raise self.failed(what or remote_cmd[0], proc.stderr.decode(errors="replace"), proc.returncode)
        return proc.stdout

    @staticmethod
    def services_command(action: str, names: list[str]) -> list[str]:
        """The remote command that stops or starts NAMES, in order (run, and shown by --dry-run)."""
        assert action in ("stop", "start")
        return ["sh", "-c", SERVICES, "sh", action, *names]

    def services(self, action: str, names: list[str]) -> None:
        """Stop or start NAMES there (--stop-services); a failure is one line."""
        self.run(self.services_command(action, names), timeout=300, what=f"{action}ping {', '.join(names)}")

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
            keys = self.scan()
            fp = fingerprints(keys) or "fingerprint unavailable"
            scan = shlex.join(["ssh-keyscan", *self.port_args, self.host])
            return UnknownHostKey(f"{self.url}: its host key is not in known_hosts ({fp}); check it, then add it: "
                                  f"{scan} >> ~/.ssh/known_hosts", keys, fp)
        if "Permission denied" in text:
            return SshError(f"{self.url}: authentication refused ({lines[-1]}); vm2c uses your ssh keys and agent, "
                            f"never a password")
        if any(sign in text for sign in DROPPED):
            return SshError(f"{self.url}: the connection was lost midway (ssh: {lines[-1]})")
        return SshError(f"{self.url}: ssh failed: {lines[-1] if lines else 'exit status 255'}")

    def fingerprint(self) -> str:
        return fingerprints(self.scan())

    def scan(self) -> bytes:
        """The host's public keys as ssh-keyscan gets them (known_hosts lines)."""
        if not which("ssh-keyscan"):
            return b""
        scan = ["ssh-keyscan", "-T", "5", *self.port_args, "--", self.host]
        return run(scan, check=False, timeout=20).stdout

    def trust(self, keys: bytes) -> Path:
        """Add KEYS (the very lines whose fingerprints the operator was shown) to the known_hosts
        file ssh reads for this host; that file."""
        cmd = ["ssh", *self.config_args(), "-G", *self.port_args, "--", self.host]
        conf = run(cmd, check=False, timeout=20).stdout.decode(errors="replace")
        files = [l.split()[1:] for l in conf.splitlines() if l.startswith("userknownhostsfile ")]
        path = Path(os.path.expanduser(files[0][0] if files and files[0] else "~/.ssh/known_hosts"))
        lines = [l for l in keys.splitlines() if l.strip() and not l.startswith(b"#")]
        if not lines:
            raise SshError(f"{self.url}: no host key to add (ssh-keyscan found none)")
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "ab") as f:
            f.write(b"\n".join(lines) + b"\n")
        return path


class UnknownHostKey(SshError):
    """The host's key is not in known_hosts: KEYS are what ssh-keyscan saw, for the wizard to
    show (FINGERPRINTS) and, if the operator says so, to add (Remote.trust)."""

    def __init__(self, message: str, keys: bytes, fingerprints: str):
        super().__init__(message)
        self.keys, self.fingerprints = keys, fingerprints


def fingerprints(keys: bytes) -> str:
    """known_hosts lines as `SHA256:... (ED25519)`, for the operator to compare."""
    if not keys or not which("ssh-keygen"):
        return ""
    fps = run(["ssh-keygen", "-l", "-f", "-"], input=keys, check=False, timeout=20).stdout
    return "; ".join(" ".join(l.split()[1:2] + l.split()[-1:]) for l in fps.decode().splitlines()[:3])
