"""`--run service:NAME`: one systemd service as the image's process. Its ExecStart becomes the
entrypoint, in the foreground; what systemd would have done first (EnvironmentFile, the runtime
directory, ExecStartPre, the SSH host keys) is folded into a small start script where simple,
and refused with the reason where not."""

from __future__ import annotations

import json
import re
import shlex

from vm2c_tui.errors import Vm2cError
from vm2c_tui.inspect.services import GuestServices, Service, units
from vm2c_tui.plan.runplan import DEFAULT_PATH, RunFile, RunPlan, dq

SCRIPT = "/usr/local/sbin/vm2c-start"
VAR = re.compile(r"\$(\w+|\{\w+\})")
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,31}\$?|\d{1,10}")  # a user or group, or its number
PLAIN = re.compile(r"/[\w./@+-]*")  # a WORKDIR that needs no Dockerfile escape


def _nginx(argv: list[str]) -> list[str]:
    """nginx forks unless told `daemon off;` (its -g directives, or the config's)."""
    out, seen = list(argv), False
    for i, word in enumerate(out[:-1]):
        if word == "-g":
            seen = True
            out[i + 1] = re.sub(r"daemon\s+on\s*;", "daemon off;", out[i + 1])
            if "daemon off;" not in out[i + 1]:
                out[i + 1] = "daemon off; " + out[i + 1]
    return out if seen else [*out, "-g", "daemon off;"]


def _apache(argv: list[str]) -> list[str]:
    return [argv[0], "-D", "FOREGROUND"]  # apachectl start forks; -D FOREGROUND is httpd's own


FOREGROUND = {"nginx": _nginx, "apachectl": _apache, "apache2ctl": _apache}


def _unescape(text: str) -> str:
    """systemd-escape -u: '-' is '/', \\xNN a byte."""
    raw = re.sub(rb"\\x([0-9a-fA-F]{2})", lambda m: bytes([int(m.group(1), 16)]), text.replace("-", "/").encode())
    return raw.decode("utf-8", "replace")


def _specifiers(unit: Service) -> dict[str, str]:
    """The specifiers of a system unit vm2c resolves (systemd.unit(5)): its names, a template's
    instance, the system manager's directories and its user."""
    stem = unit.name.rsplit(".", 1)[0]
    instance = stem.split("@", 1)[1] if "@" in stem else ""
    return {"%n": unit.name, "%N": stem, "%p": stem.split("@")[0], "%i": instance, "%I": _unescape(instance),
            "%t": "/run", "%S": "/var/lib", "%C": "/var/cache", "%L": "/var/log", "%E": "/etc", "%T": "/tmp",
            "%V": "/var/tmp", "%u": unit.user or "root", "%%": "%"}


def words(line: str, name: str, unit: Service) -> tuple[list[str], bool]:
    """One Exec line as argv and whether its failure is ignored (a leading '-'); see privileged()."""
    prefix = units.EXEC_PREFIX.match(line).group(0)
    if "@" in prefix:
        raise Vm2cError(f"--run service:{name}: '{line}' sets its own argv[0] (@): not folded; use --run system")
    try:
        argv = shlex.split(line[len(prefix):])
    except ValueError as e:
        raise Vm2cError(f"--run service:{name}: cannot read '{line}' ({e})") from None
    spec = _specifiers(unit)

    def resolve(m: re.Match) -> str:
        if m.group(0) not in spec:
            raise Vm2cError(f"--run service:{name}: '{line}' uses a systemd specifier vm2c does not resolve "
                            f"({m.group(0)}); use --run system")
        return spec[m.group(0)]

    # per word, after the split, as systemd does: an instance's escaped space stays in its word
    return [re.sub(r"%.?", resolve, w) for w in argv], "-" in prefix


def privileged(line: str) -> bool:
    """An Exec line systemd runs with full privileges whatever User= says ('+' or '!')."""
    return bool(set(units.EXEC_PREFIX.match(line).group(0)) & {"+", "!"})


def sh_word(word: str) -> str:
    """A word for sh, keeping systemd's $VAR (split into words) and ${VAR} (one word) expansions
    and nothing else: $(...), backquotes and globs stay the literal text they are to systemd."""
    if re.fullmatch(r"\$\w+", word):
        return word
    out, pos = [], 0
    for m in VAR.finditer(word):
        if m.start() > pos:
            out.append(shlex.quote(word[pos:m.start()]))
        out.append('"${' + m.group(1).strip("{}") + '}"')
        pos = m.end()
    if pos < len(word) or not out:
        out.append(shlex.quote(word[pos:]))
    return "".join(out)


def _main(unit: Service, name: str) -> list[str]:
    argv, _ = words(unit.exec_start[-1], name, unit)
    if not argv:
        raise Vm2cError(f"--run service:{name}: its ExecStart is empty")
    if unit.type == "forking":
        fix = FOREGROUND.get(argv[0].rsplit("/", 1)[-1])
        if fix is None:
            raise Vm2cError(f"--run service:{name}: Type=forking ({argv[0]} goes to the background) and vm2c knows "
                            f"no foreground form of it; use --run system")
        argv = fix(argv)
    if len(unit.exec_start) > 1:
        raise Vm2cError(f"--run service:{name}: {len(unit.exec_start)} ExecStart lines (Type=oneshot steps): "
                        f"use --run system")
    return argv


# systemd's EnvironmentFile: KEY=VALUE lines, # and ; comments, a value's outer quotes dropped;
# read, never run (sourcing it as sh would run what a value holds)
ENVFILE = r"""envfile() {
  while IFS= read -r line || [ -n "$line" ]; do
    case "$line" in ''|'#'*|';'*|*[!A-Za-z0-9_]*=*) continue;; *=*) ;; *) continue;; esac
    k=${line%%=*}; v=${line#*=}
    case "$v" in \"*\") v=${v#\"}; v=${v%\"};; \'*\') v=${v#\'}; v=${v%\'};; esac
    export "$k=$v"
  done < "$1"
}"""


def _drop(unit: Service, setpriv: str) -> tuple[list[str], str]:
    """Lines that name the unit's group, and the words before a command that run it as User=
    (none without User= or setpriv: the image's USER says it then)."""
    if not (unit.user and setpriv):
        return [], ""
    group = shlex.quote(unit.group) if unit.group else f"\"$(id -g -- {shlex.quote(unit.user)})\""
    return [f"vm2c_group={group}"], f'{setpriv} --reuid={shlex.quote(unit.user)} --regid="$vm2c_group" --init-groups --'


def script(unit: Service, name: str, keygen: str, setpriv: str = "") -> str:
    """The start script: as root what systemd does as root (runtime directories owned by the
    user, host keys), then ExecStartPre and ExecStart as User= through SETPRIV when it is set."""
    shown = re.sub(r"[^\x20-\x7e]", "?", f"{unit.name} ({unit.unit})")  # a name's newline stays in the comment
    lines = ["#!/bin/sh", f"# vm2c: {shown} as this container's process", "set -e"]
    named, drop = _drop(unit, setpriv)
    lines += named
    lines += [ENVFILE] if unit.environment_files else []
    for f in unit.environment_files:
        path = shlex.quote(f.lstrip("-"))
        lines.append(f"if [ -r {path} ]; then envfile {path}; fi" if f.startswith("-") else f"envfile {path}")
    for d in unit.runtime_directory:
        path = shlex.quote('/run/' + d)
        lines.append(f"mkdir -p {path}" + (f' && chown {shlex.quote(unit.user)}:"$vm2c_group" {path}' if drop else ""))
    if keygen:
        lines.append(f"{keygen} -A  # host keys: left out of the image, made by each container")
    for pre in unit.exec_start_pre:
        argv, ignore = words(pre, name, unit)
        as_user = f"{drop} " if drop and not privileged(pre) else ""
        lines.append(as_user + " ".join(map(sh_word, argv)) + (" || true" if ignore else ""))
    lines.append("exec " + (f"{drop} " if drop else "") + " ".join(map(sh_word, _main(unit, name))))
    return "\n".join(lines) + "\n"


def _environment(unit: Service) -> list[str]:
    out = []
    for line in unit.environment:
        try:
            pairs = units.words(line)
        except ValueError as e:
            raise Vm2cError(f"--run service:{unit.name}: cannot read Environment={line} ({e})") from None
        for pair in pairs:
            key, sep, value = pair.partition("=")
            if not (sep and re.fullmatch(r"\w+", key)):
                continue
            if any(ord(c) < 32 or ord(c) == 127 for c in value):  # a Dockerfile line cannot carry one
                raise Vm2cError(f"--run service:{unit.name}: Environment {key} holds a control character")
            out.append(f"ENV {key}={dq(value)}")
    return out


def _user_and_dir(unit: Service, name: str, setpriv: str) -> list[str]:
    """USER (when the start script cannot drop to it itself) and WORKDIR, written only when they
    need no escaping (a Dockerfile line has none)."""
    for what, value in (("User", unit.user), ("Group", unit.group)):
        if value and not NAME.fullmatch(value):
            raise Vm2cError(f"--run service:{name}: {what}={value!r} is not a user or group name")
    by_docker = unit.user and not setpriv
    out = [f"USER {unit.user}" + (f":{unit.group}" if unit.group else "")] if by_docker else []
    workdir = unit.working_directory.lstrip("-")
    if workdir and not PLAIN.fullmatch(workdir):
        raise Vm2cError(f"--run service:{name}: WorkingDirectory={workdir!r} is not a plain absolute path")
    return [*out, f"WORKDIR {workdir}"] if workdir else out


def plan(guest: GuestServices, name: str, shell: str, sanitized: bool) -> RunPlan:
    unit = next(s for s in guest.services if s.name in (name, f"{name}.service"))
    base = name.split("@")[0]
    keygen = guest.keygen if base in ("ssh", "sshd") and sanitized else ""
    text = script(unit, name, keygen, guest.setpriv)
    config = [f"ENV PATH={DEFAULT_PATH}", *_environment(unit), *_user_and_dir(unit, name, guest.setpriv)]
    config += [f"EXPOSE {p}" for p in unit.ports]
    volumes = [d for d, _, why in guest.data_dirs if why.startswith(f"{base}'s")]
    config += [f"VOLUME {json.dumps(volumes)}"] if volumes else []
    config += [f"ENTRYPOINT {json.dumps([shell, SCRIPT])}", 'CMD []']
    notes = [f"{unit.name}: its start folded into {SCRIPT}"]
    if unit.user and guest.setpriv:
        notes.append(f"{SCRIPT} starts as root and runs the service as {unit.user} (setpriv), as systemd does")
    elif unit.user and (unit.exec_start_pre or unit.runtime_directory or keygen):
        notes.append(f"{SCRIPT} runs as {unit.user} (the guest has no setpriv): its steps that need root may fail")
    return RunPlan(f"service:{name}", config, [RunFile(SCRIPT, text, mode=0o755)], list(unit.ports), volumes,
                   notes=notes)
