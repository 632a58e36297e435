"""systemd unit files as the guest holds them: found by name in the unit path (a template's
instance by its template), drop-ins applied, the keys a container needs read."""

from __future__ import annotations

import re

UNIT_PATH = ("/etc/systemd/system", "/run/systemd/system", "/lib/systemd/system", "/usr/lib/systemd/system")
KEYS = {"ExecStart", "ExecStartPre", "User", "Group", "WorkingDirectory", "Environment", "EnvironmentFile", "Type",
        "ListenStream", "Service", "RuntimeDirectory"}
LIST_KEYS = {"ExecStart", "ExecStartPre", "Environment", "EnvironmentFile", "ListenStream", "RuntimeDirectory"}

EXEC_PREFIX = re.compile(r"[-@:+!]*")  # an Exec line's special prefixes (systemd.service(5))


def parse(text: str, into: dict[str, list[str]] | None = None) -> dict[str, list[str]]:
    """The [Service]/[Socket] keys of one unit file (or drop-in) over INTO; an empty
    assignment resets a list key, as systemd does (how a drop-in replaces ExecStart)."""
    out = into if into is not None else {}
    lines = text.replace("\\\n", " ").splitlines()
    section = ""
    for line in lines:
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        key, sep, value = line.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or section not in ("Service", "Socket") or key not in KEYS:
            continue
        if key in LIST_KEYS:
            out[key] = [] if not value else [*out.get(key, []), value]
        else:
            out[key] = [value]
    return out


def template_of(name: str) -> str:
    """getty@tty1.service -> getty@.service"""
    m = re.fullmatch(r"([^@]+@)[^.]*(\.\w+)", name)
    return m.group(1) + m.group(2) if m else name


def find(guest, name: str) -> tuple[str, dict[str, list[str]]] | None:
    """NAME's unit file in the guest (the first in the unit path) with its drop-ins applied."""
    for d in UNIT_PATH:
        for candidate in dict.fromkeys((name, template_of(name))):
            data = guest.read(f"{d}/{candidate}")
            if data is None:
                continue
            keys = parse(data.decode("utf-8", "replace"))
            for dd in UNIT_PATH:
                for conf in sorted(c for c in guest.listdir(f"{dd}/{name}.d") if c.endswith(".conf")):
                    extra = guest.read(f"{dd}/{name}.d/{conf}")
                    if extra is not None:
                        parse(extra.decode("utf-8", "replace"), keys)
            return f"{d}/{candidate}", keys
    return None


def port_of_listen(value: str) -> int | None:
    """ListenStream=80, 0.0.0.0:80, [::]:80 -> 80; a path (a unix socket) -> None."""
    m = re.search(r"(?:^|:)(\d{1,5})$", value.strip())
    return int(m.group(1)) if m and 0 < int(m.group(1)) < 65536 else None


_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "s": " ",
            "\\": "\\", '"': '"', "'": "'"}
_NUMERIC = re.compile(r"x([0-9a-fA-F]{2})|u([0-9a-fA-F]{4})|U([0-9a-fA-F]{8})|([0-7]{3})")


def words(line: str) -> list[str]:
    """LINE split as systemd splits Environment= (quotes removed, C escapes resolved, in or out of
    quotes); an unknown escape or an open quote: ValueError."""
    out, word, quote, i, started = [], [], "", 0, False
    while i < len(line):
        c = line[i]
        if c == "\\":
            nxt = line[i + 1:i + 2]
            m = _NUMERIC.match(line, i + 1)
            if nxt in _ESCAPES:
                word.append(_ESCAPES[nxt])
                i += 2
            elif m:
                word.append(chr(int(next(g for g in m.groups() if g), 8 if m.group(4) else 16)))
                i = m.end()
            else:
                raise ValueError(f"an unknown escape \\{nxt} in {line!r}")
            started = True
            continue
        if quote:
            if c == quote:
                quote = ""
            else:
                word.append(c)
        elif c in "\"'":
            quote, started = c, True
        elif c.isspace():
            if started:
                out.append("".join(word))
            word, started = [], False
        else:
            word.append(c)
            started = True
        i += 1
    if quote:
        raise ValueError(f"an open quote in {line!r}")
    return [*out, "".join(word)] if started else out
