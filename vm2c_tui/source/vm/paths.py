"""The files a VM definition names, resolved inside the VM's folder (or --trust-dir)."""

from __future__ import annotations

import os
import re
from pathlib import Path

from vm2c_tui.errors import Vm2cError
from vm2c_tui.host.confine import trusted_dirs, within
from vm2c_tui.source.imagerefs import shown


def inside(definition: Path, name: str, what: str = "disk", fallback_basename: bool = False) -> str:
    """NAME as written in DEFINITION, resolved; refused unless it is a plain file path inside the
    definition's folder or a trusted directory. FALLBACK_BASENAME: an absolute path elsewhere (a
    libvirt domain names /var/lib/libvirt/images/...) is looked for beside the definition."""
    folder = os.path.realpath(definition.parent)
    if not name or "\0" in name or re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", name):
        raise Vm2cError(f"{definition}: its {what} {shown(name)} is not a file path; refusing it")
    full = os.path.realpath(os.path.join(folder, name.replace("\\", "/")))
    allowed = [folder, *trusted_dirs()]
    if not within(full, allowed) and fallback_basename:
        beside = os.path.realpath(os.path.join(folder, os.path.basename(name)))
        if os.path.exists(beside) and within(beside, allowed):
            return beside
    if not within(full, allowed):
        raise Vm2cError(f"{definition}: its {what} {shown(name)} lies outside the VM's folder {folder}; refusing "
                        f"to read it (copy it beside the definition, or name its directory with --trust-dir DIR)")
    if not os.path.isfile(full):
        raise Vm2cError(f"{definition}: its {what} {shown(name)} is missing")
    return full
