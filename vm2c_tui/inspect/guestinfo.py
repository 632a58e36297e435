"""What a guest filesystem says about itself: os-release, fstab, init."""

from __future__ import annotations

import re
from dataclasses import dataclass

from vm2c_tui.inspect.guestpath import GuestRoot

SWAP = {"swap"}
NETWORK = {"nfs", "nfs4", "cifs", "smbfs", "sshfs", "fuse.sshfs", "glusterfs", "ceph", "9p", "davfs"}
PSEUDO = {"proc", "sysfs", "tmpfs", "devpts", "devtmpfs", "cgroup", "cgroup2", "securityfs", "debugfs",
          "tracefs", "mqueue", "hugetlbfs", "pstore", "efivarfs", "binfmt_misc", "autofs", "configfs",
          "fusectl", "ramfs", "bpf", "overlay", "none"}


@dataclass
class OsInfo:
    id: str
    version_id: str
    pretty_name: str

    def to_json(self) -> dict:
        return {"id": self.id, "version_id": self.version_id, "pretty_name": self.pretty_name}


@dataclass
class FstabEntry:
    spec: str
    mountpoint: str
    fstype: str
    options: str
    target: str | None = None  # the filesystem id it resolves to on this disk
    skip: str = ""  # why it is not assembled: swap, network, pseudo, not on this disk ...

    def to_json(self) -> dict:
        return {"spec": self.spec, "mountpoint": self.mountpoint, "fstype": self.fstype,
                "options": self.options, "target": self.target, "skip": self.skip or None}


def parse_os_release(data: bytes) -> OsInfo | None:
    values: dict[str, str] = {}
    for line in data.decode("utf-8", "replace").splitlines():
        m = re.match(r"\s*([A-Z_][A-Z0-9_]*)=(.*)", line)
        if not m:
            continue
        v = m.group(2).strip()
        if len(v) >= 2 and v[0] == v[-1] and v[0] in "\"'":
            v = v[1:-1]
        values[m.group(1)] = re.sub(r"\\(.)", r"\1", v)[:200]
    if not values:
        return None
    pretty = values.get("PRETTY_NAME") or " ".join(filter(None, [values.get("NAME"), values.get("VERSION")]))
    return OsInfo(values.get("ID", ""), values.get("VERSION_ID", ""), pretty or values.get("ID", "Linux"))


def _unescape(field: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def parse_fstab(data: bytes, limit: int = 500) -> list[FstabEntry]:
    out = []
    for line in data.decode("utf-8", "replace").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        f = line.split()
        if len(f) < 2:
            continue
        fstype = f[2] if len(f) > 2 else "auto"
        entry = FstabEntry(_unescape(f[0]), _unescape(f[1]), fstype, f[3] if len(f) > 3 else "defaults")
        if fstype in SWAP or entry.mountpoint in ("none", "swap"):
            entry.skip = "swap"
        elif fstype in NETWORK or ":" in entry.spec or entry.spec.startswith("//"):
            entry.skip = "network filesystem"
        elif fstype in PSEUDO or entry.spec in PSEUDO:
            entry.skip = "pseudo filesystem"
        elif "bind" in entry.options.split(","):
            entry.skip = "bind mount (the directory is in the tree already)"
        elif not entry.mountpoint.startswith("/"):
            entry.skip = "not a mount point"
        out.append(entry)
        if len(out) >= limit:
            break
    return out


@dataclass
class GuestFacts:
    os: OsInfo | None
    fstab: list[FstabEntry]
    has_fstab: bool
    has_init: bool
    top: list[str]
    shells: list[str]

    @property
    def score(self) -> int:
        return 4 * (self.os is not None) + 2 * self.has_fstab + 2 * self.has_init


SHELLS = ("/bin/bash", "/bin/sh", "/usr/bin/bash", "/bin/ash", "/usr/bin/sh", "/bin/busybox")


def read_facts(guest: GuestRoot) -> GuestFacts:
    data = guest.read("/etc/os-release") or guest.read("/usr/lib/os-release")
    os_info = parse_os_release(data) if data else None
    fstab_data = guest.read("/etc/fstab")
    init = any(guest.exists(p) for p in ("/sbin/init", "/usr/lib/systemd/systemd", "/init"))
    shells = [s for s in SHELLS if guest.is_executable(s)]
    return GuestFacts(os_info, parse_fstab(fstab_data) if fstab_data else [], fstab_data is not None,
                      init, guest.listdir("/"), shells)
