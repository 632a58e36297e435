"""Builds the demo disk and the test fixtures with real tools (sfdisk, mkfs, lvm, qemu-img).

Tooling, not the product: scripts/demo and the tests use it, vm2c itself never imports it.
Needs root (loop devices for LVM and xfs, chown/mknod for the guest tree).
Nothing is downloaded: the guest userland is Debian's busybox-static.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

# the launchers: editing them changes no disk
NOT_BUILDER = {"demo.py", "__main__.py", "vms.py"}  # vms.py: VMs made from raw disks, keyed apart


def builder_key() -> str:
    """Changes whenever the builder's code or the guest userland does: disks built with another
    key are stale (the tests' fixture cache and the demo disk both key on it)."""
    h = hashlib.sha256()
    for p in sorted(Path(__file__).parent.glob("*.py")):
        if p.name in NOT_BUILDER:
            continue
        h.update(p.name.encode() + p.read_bytes())
    h.update(Path("/bin/busybox").read_bytes()[:4096])
    return h.hexdigest()[:16]
