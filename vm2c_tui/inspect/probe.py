"""Filesystem signatures with blkid, on a byte range of the raw view."""

from __future__ import annotations

from dataclasses import dataclass

from vm2c_tui.host.confine import Sandbox
from vm2c_tui.host.run import run


@dataclass
class Signature:
    fstype: str = ""
    label: str = ""
    uuid: str = ""
    usage: str = ""


def _unescape(v: str) -> str:
    out, i = [], 0
    while i < len(v):
        if v[i] == "\\" and i + 1 < len(v):
            out.append(v[i + 1])
            i += 2
        else:
            out.append(v[i])
            i += 1
    return "".join(out)


def probe(raw: str, offset: int, size: int) -> Signature:
    """What blkid finds at RAW[offset:offset+size] (it reads, never writes)."""
    proc = run(["blkid", "-p", "-o", "export", "-O", str(offset), "-S", str(size), raw], check=False, timeout=30,
               sandbox=Sandbox.for_file(raw))
    sig = Signature()
    for line in proc.stdout.decode("utf-8", "replace").splitlines():
        key, _, val = line.partition("=")
        val = _unescape(val)
        if key == "TYPE":
            sig.fstype = val
        elif key == "LABEL":
            sig.label = val
        elif key == "UUID":
            sig.uuid = val
        elif key == "USAGE":
            sig.usage = val
    return sig
