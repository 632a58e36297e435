"""The user-space engine: reads an image, its table, LVM and filesystems in
Python and writes the tar itself, so it needs no root, nbd, FUSE or mount.

Filesystem parsing uses Fox-IT's dissect modules, which are AGPL-3.0: they are
an optional extra (`pip install vm2c-tui[userspace]`), imported only here.
"""

from __future__ import annotations

import importlib.util

from vm2c_tui.errors import Vm2cError

MODULES = ("dissect.extfs", "dissect.xfs", "dissect.btrfs", "dissect.fat", "dissect.hypervisor")


def available() -> bool:
    try:
        return all(importlib.util.find_spec(m) is not None for m in MODULES)
    except ModuleNotFoundError:  # no dissect namespace at all
        return False


def require() -> None:
    if not available():
        raise Vm2cError("the user-space engine needs the optional dissect modules (AGPL-3.0): "
                        "pip install 'vm2c-tui[userspace]'")
