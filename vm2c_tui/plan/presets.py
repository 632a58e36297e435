"""What a container does not need from a VM, and how much leaving it out saves."""

from __future__ import annotations

import fnmatch
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from vm2c_tui.inspect.guestpath import GuestPathError, GuestRoot

# Kept as empty directories whatever the preset: Docker provides them.
ALWAYS_EMPTY = ("proc", "sys", "dev", "run", "tmp")


@dataclass(frozen=True)
class Rule:
    pattern: str  # anchored at the guest root, GNU tar wildcard
    why: str


CONTAINER = (
    Rule("./boot/*", "kernel, initrd and boot loader"),
    Rule("./lib/modules/*", "kernel modules"),
    Rule("./usr/lib/modules/*", "kernel modules"),
    Rule("./lost+found", "fsck's lost+found"),
    Rule("./var/cache/apt/*.bin", "package caches"),
    Rule("./var/cache/apt/archives/*.deb", "package caches"),
    Rule("./var/cache/dnf/*", "package caches"),
    Rule("./var/cache/yum/*", "package caches"),
    Rule("./var/cache/man/*", "package caches"),
    Rule("./root/.cache/*", "user caches"),
    Rule("./var/tmp/*", "temporary files"),
    Rule("./swapfile", "swap file"),
    Rule("./swap.img", "swap file"),
)
MINIMAL = CONTAINER + (
    Rule("./usr/share/doc/*", "documentation"),
    Rule("./usr/share/man/*", "man pages"),
    Rule("./usr/share/info/*", "info pages"),
    Rule("./var/log/*.log", "logs"),
    Rule("./var/log/*.gz", "logs"),
    Rule("./var/log/messages*", "logs"),
    Rule("./var/log/syslog*", "logs"),
    Rule("./var/log/journal/*", "logs"),
    Rule("./var/lib/apt/lists/*", "package lists"),
)
PRESETS = {"none": (), "container": CONTAINER, "minimal": MINIMAL}
SANITIZE = (Rule("./etc/ssh/ssh_host_*", "SSH host keys (each container should get its own)"),)


def rules(preset: str, mountpoints: list[str] = ()) -> list[Rule]:
    out = list(PRESETS[preset])
    if preset != "none":  # every assembled filesystem has its own lost+found
        out += [Rule(f".{mp}/lost+found", "fsck's lost+found") for mp in mountpoints if mp != "/"]
    return out


def _tree_size(path: str) -> int:
    try:
        st = os.lstat(path)
    except OSError:
        return 0
    if not stat.S_ISDIR(st.st_mode):
        return st.st_blocks * 512
    total = st.st_blocks * 512
    for dirpath, dirnames, filenames in os.walk(path):
        for n in dirnames + filenames:
            try:
                total += os.lstat(os.path.join(dirpath, n)).st_blocks * 512
            except OSError:
                pass
    return total


def sizes(guest: GuestRoot, path: str) -> list[tuple[str, int, bool]]:
    """(name, bytes allocated, is a directory) of each entry of guest PATH, largest first: what
    the disk-usage explorer lists (the mounts below PATH are walked too, as tar will)."""
    try:
        host_dir = guest.resolve(path, follow_last=False)
        names = os.listdir(host_dir)
    except (GuestPathError, OSError):
        return []
    out = []
    for n in names:
        full = os.path.join(host_dir, n)
        out.append((n, _tree_size(full), os.path.isdir(full) and not os.path.islink(full)))
    return sorted(out, key=lambda e: (-e[1], e[0]))


def matches(guest: GuestRoot, pattern: str) -> list[str]:
    """Host paths matching an anchored pattern whose wildcards are in its last component."""
    parent, _, last = pattern.removeprefix(".").rpartition("/")
    try:
        host_dir = guest.resolve(parent or "/")
        names = os.listdir(host_dir)
    except (GuestPathError, OSError):
        return []
    return [os.path.join(host_dir, n) for n in names if fnmatch.fnmatchcase(n, last)]


def savings(guest: GuestRoot, rule_list: list[Rule]) -> int:
    return sum(_tree_size(p) for r in rule_list for p in matches(guest, r.pattern))


def estimate_all(guest: GuestRoot, mountpoints: list[str]) -> dict[str, int]:
    """Bytes each preset leaves out of this tree (walks only the excluded parts)."""
    return {name: savings(guest, rules(name, mountpoints)) for name in PRESETS}


def live_rules(tree: Path, output_dir: Path | None, sanitize: bool) -> list[Rule]:
    """A running system: never archive the output into itself; no bind mounts over live files."""
    out: list[Rule] = []
    if output_dir is not None:
        rel = os.path.relpath(os.path.realpath(output_dir), os.path.realpath(tree))
        if not rel.startswith(".."):
            out.append(Rule(f"./{rel}", "the output directory"))
    if sanitize:
        out.append(Rule("./etc/machine-id", "machine id (a container gets its own)"))
    return out
