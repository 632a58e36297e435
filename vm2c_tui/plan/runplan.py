"""How the image runs (issue 24), decided from what the guest runs: `shell` (a shell, as the
classic recipe), `system` (the guest's init as PID 1) or `service:NAME` (one service as the
image's process). A plan is config lines (Dockerfile instructions, the same for the import
route's second layer), a few files for that layer, and the facts `docker run`, compose and the
smoke test need. Pure decisions: nothing here writes or runs."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from vm2c_tui.errors import Vm2cError
from vm2c_tui.inspect.services import GuestServices

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
MODES = "system | service:NAME | shell"


@dataclass
class RunFile:
    """One entry of the run layer: a file (TEXT) or, with LINK, a symlink (a masked unit)."""

    path: str
    text: str = ""
    link: str = ""
    mode: int = 0o644


@dataclass
class RunPlan:
    mode: str  # shell | system | service:NAME
    config: list[str]  # Dockerfile instructions after the ADDs
    files: list[RunFile] = field(default_factory=list)  # the run layer (none: no second layer)
    ports: list[int] = field(default_factory=list)
    volumes: list[str] = field(default_factory=list)  # data directories that should outlive a container
    active: list[str] = field(default_factory=list)  # system: units the smoke test wants active
    notes: list[str] = field(default_factory=list)
    init: str = ""  # system: the guest's init system

    @property
    def system(self) -> bool:
        return self.mode == "system"

    def run_args(self, cgroup: str = "1") -> list[str]:
        """`docker run` flags this mode needs on a daemon with cgroup version CGROUP ("1" or "2")."""
        if not self.system:
            return []
        if self.init != "systemd":
            return ["--tmpfs", "/run", "--tmpfs", "/tmp"]
        cg = ["-v", "/sys/fs/cgroup:/sys/fs/cgroup:ro"] if cgroup != "2" else \
            ["--cgroupns=host", "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw"]  # systemd must write its own tree on v2
        return [*cg, "--tmpfs", "/run", "--tmpfs", "/run/lock", "--tmpfs", "/tmp"]

    def to_json(self) -> dict:
        return {"mode": self.mode, "init": self.init or None, "config": self.config,
                "files": [f.path for f in self.files], "ports": self.ports, "volumes": self.volumes,
                "active": self.active, "notes": self.notes}

    @classmethod
    def from_json(cls, doc: dict) -> RunPlan:
        """The plan `vm2c archive` wrote beside img.tar (run.json), for `vm2c build` (its files
        are in run.tar already)."""
        return cls(doc["mode"], doc["config"], [], doc.get("ports", []), doc.get("volumes", []),
                   doc.get("active", []), doc.get("notes", []), doc.get("init") or "")


def dq(value: str) -> str:
    """VALUE as one double-quoted Dockerfile word that Docker reads back as VALUE (ENV, LABEL,
    and import's --change): backslash, quote and `$` escaped (Docker expands $VAR there), no
    \\u escapes (it reads none); a control character, which no line can carry, becomes a space."""
    clean = "".join(" " if ord(c) < 32 or ord(c) == 127 else c for c in value)
    return '"' + clean.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$") + '"'


def undq(word: str) -> str:
    """dq's word read back (a bare word as it is)."""
    if len(word) >= 2 and word[0] == word[-1] == '"':
        return re.sub(r"\\(.)", r"\1", word[1:-1])
    return word


def config_lines(cfg: dict) -> list[str]:
    """A Docker image config (`Config` of an inspect) as the instructions that make it again."""
    out = []
    for pair in cfg.get("Env") or []:
        key, _, value = pair.partition("=")
        out.append(f"ENV {key}={dq(value)}")
    out += [f"LABEL {k}={dq(v)}" for k, v in (cfg.get("Labels") or {}).items()]
    for key, word in (("User", "USER"), ("WorkingDir", "WORKDIR"), ("StopSignal", "STOPSIGNAL")):
        if cfg.get(key):
            out.append(f"{word} {cfg[key]}")
    out += [f"EXPOSE {port}" for port in cfg.get("ExposedPorts") or {}]
    out += [f"VOLUME {json.dumps(sorted(cfg['Volumes']))}"] if cfg.get("Volumes") else []
    for key, word in (("Entrypoint", "ENTRYPOINT"), ("Cmd", "CMD")):
        if cfg.get(key):
            out.append(f"{word} {json.dumps(cfg[key])}")
    return out


def shell_plan(shell: str) -> RunPlan:
    return RunPlan("shell", [f"ENV PATH={DEFAULT_PATH}", f"CMD {json.dumps([shell])}"])


def plan_run(mode: str, guest: GuestServices | None, shell: str, sanitized: bool = True) -> RunPlan:
    """MODE for the guest GUEST read (None: not read, only shell mode); SHELL: the guest's shell;
    SANITIZED: the SSH host keys and machine-id were left out of the image."""
    from vm2c_tui.plan import runservice, runsystem

    if mode == "shell":
        return shell_plan(shell)
    if guest is None:
        raise Vm2cError(f"--run {mode}: what the guest runs was not read (only --run shell here)")
    if mode not in guest.run_modes:
        offered = ", ".join(guest.run_modes)
        why = "the guest has no init" if mode == "system" else f"no service {mode.partition(':')[2]!r} the init " \
            "starts with an ExecStart"
        raise Vm2cError(f"--run {mode}: {why} (this guest offers: {offered})")
    if mode == "system":
        return runsystem.plan(guest, sanitized)
    return runservice.plan(guest, mode.partition(":")[2], shell, sanitized)


def parse_mode(text: str) -> str:
    if text in ("system", "shell") or (text.startswith("service:") and len(text) > 8):
        return text
    raise Vm2cError(f"--run {text}: one of {MODES}")
