"""A running machine over SSH, inspected the way the Partitions step shows a disk: its OS, its
filesystems from its mount table (which are archived and why the others are not), what holds
files open for writing, its running services. One ssh call runs a fixed script (no value of
ours is pasted into it) and prints sections that are parsed here."""

from __future__ import annotations

from dataclasses import dataclass, field

from vm2c_tui.errors import Vm2cError
from vm2c_tui.inspect.guestinfo import OsInfo, parse_os_release
from vm2c_tui.source.ssh import Remote

SCRIPT = r"""
echo @@os; cat /etc/os-release 2>/dev/null || cat /usr/lib/os-release 2>/dev/null
echo @@mounts; cat /proc/self/mountinfo
echo @@df; df -P -B1 2>/dev/null || { echo @@dfk; df -Pk; }
echo @@tar; tar --version 2>/dev/null | head -n 1
echo @@xattrs; tar --xattrs --xattrs-include='*' --create --file=/dev/null --files-from=/dev/null >/dev/null 2>&1 && echo yes
echo @@compressors; for c in zstd gzip; do command -v "$c" >/dev/null 2>&1 && echo "$c"; done
echo @@uid; id -u
echo @@shells; for s in /bin/bash /usr/bin/bash /bin/sh /usr/bin/sh /bin/ash; do [ -x "$s" ] && echo "$s"; done
echo @@services
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
  systemctl list-units --type=service --state=running --no-legend --plain 2>/dev/null | cut -d' ' -f1
fi
echo @@writers
n=0
for d in /proc/[0-9]*; do
  [ "${d#/proc/}" = "$$" ] && continue
  for f in "$d"/fd/*; do
    t=$(readlink "$f" 2>/dev/null) || continue
    case "$t" in /*) ;; *) continue;; esac
    case "$t" in /proc/*|/dev/*|/sys/*|/run/*) continue;; esac
    fl=$(sed -n 's/^flags:[[:space:]]*//p' "$d/fdinfo/${f##*/}" 2>/dev/null)
    case "$fl" in *[123567]) echo "${d#/proc/} $(cat "$d/comm" 2>/dev/null) $t"; n=$((n+1));; esac
    [ $n -ge 40 ] && break 2
  done
done
echo @@end
"""

LOCAL = {"ext2", "ext3", "ext4", "xfs", "btrfs", "vfat", "f2fs", "jfs", "reiserfs", "zfs", "exfat", "ntfs3"}
PSEUDO = {"proc", "sysfs", "cgroup", "cgroup2", "devtmpfs", "devpts", "mqueue", "debugfs", "tracefs", "securityfs",
          "pstore", "bpf", "configfs", "fusectl", "hugetlbfs", "autofs", "binfmt_misc", "efivarfs", "nsfs", "rpc_pipefs"}
NETWORK = {"nfs", "nfs4", "cifs", "smb3", "fuse.sshfs", "glusterfs", "ceph", "9p", "fuse.s3fs", "davfs"}
MEMORY = {"tmpfs", "ramfs"}
SYSTEM_DIRS = ("/proc", "/sys", "/dev", "/run")


@dataclass
class RemoteMount:
    device: str
    fstype: str
    mountpoint: str
    size: int = 0
    used: int = 0
    archived: bool = False
    why: str = ""

    def to_json(self) -> dict:
        return {"device": self.device, "fstype": self.fstype, "mountpoint": self.mountpoint, "size": self.size,
                "used": self.used, "archived": self.archived, "why": self.why or None}


@dataclass
class RemoteInspection:
    source: str
    os: OsInfo | None
    mounts: list[RemoteMount]
    tar: str
    uid: int
    shells: list[str]
    services: list[str] = field(default_factory=list)
    writers: list[tuple[int, str, str]] = field(default_factory=list)  # (pid, command, path)
    warnings: list[str] = field(default_factory=list)
    xattrs: bool = True  # its tar reads xattrs (capabilities, ACLs, SELinux labels)
    compressors: list[str] = field(default_factory=list)  # zstd, gzip: there for --compress

    @property
    def archived(self) -> list[RemoteMount]:
        return [m for m in self.mounts if m.archived]

    def to_json(self) -> dict:
        return {"source": self.source, "os": self.os.to_json() if self.os else None,
                "mounts": [m.to_json() for m in self.mounts], "tar": self.tar or None, "uid": self.uid,
                "services": list(self.services),
                "writers": [{"pid": p, "command": c, "path": f} for p, c, f in self.writers],
                "xattrs": self.xattrs, "compressors": list(self.compressors), "warnings": list(self.warnings)}


def inspect_remote(remote: Remote) -> RemoteInspection:
    out = remote.run(["sh", "-c", SCRIPT], timeout=120).decode("utf-8", "surrogateescape")
    parts = _sections(out)
    if "end" not in parts:
        raise Vm2cError(f"{remote.url}: the remote's answer was cut short (is its shell a POSIX sh?)")
    mounts = _mounts(parts.get("mounts", []))
    if "dfk" in parts:  # a df without -B (busybox): kilobytes
        _sizes(mounts, parts["dfk"], 1024)
    else:
        _sizes(mounts, parts.get("df", []), 1)
    insp = RemoteInspection(remote.url, parse_os_release("\n".join(parts.get("os", [])).encode()), mounts,
                            (parts.get("tar") or [""])[0], int((parts.get("uid") or ["0"])[0] or 0),
                            parts.get("shells", []), parts.get("services", []), _writers(parts.get("writers", [])),
                            xattrs=parts.get("xattrs") == ["yes"], compressors=parts.get("compressors", []))
    _conclude(insp)
    _overlay_root(remote, insp)
    return insp


def _overlay_root(remote: Remote, insp: RemoteInspection) -> None:
    """A root on an overlay (the machine is itself a container) reports its host's usage to df:
    count what the root holds instead (du -x stays on it), for the progress to measure against."""
    root = next((m for m in insp.mounts if m.mountpoint == "/"), None)
    if root is None or root.fstype not in ("overlay", "aufs"):
        return
    try:
        out = remote.run(["du", "-sx", "-B1", "/"], timeout=300).split()
        root.used = int(out[0])
    except (Vm2cError, ValueError, IndexError):
        pass  # du refused somewhere: the progress bar is only less exact


def _sections(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    cur = None
    for line in text.splitlines():
        if line.startswith("@@") and line[2:].isalpha():
            cur = line[2:]
            out[cur] = []
        elif cur is not None:
            out[cur].append(line)
    return out


def _unescape(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash in octal (\\040)."""
    return field.encode().decode("unicode_escape").encode("latin-1").decode("utf-8", "replace") \
        if "\\" in field else field


def _mounts(lines: list[str]) -> list[RemoteMount]:
    out: list[RemoteMount] = []
    seen: set[str] = set()
    for line in lines:
        left, sep, right = line.partition(" - ")
        f, r = left.split(), right.split()
        if not sep or len(f) < 5 or len(r) < 2:
            continue
        root, mountpoint, fstype, device = _unescape(f[3]), _unescape(f[4]), r[0], _unescape(r[1])
        m = RemoteMount(device, fstype, mountpoint)
        m.archived, m.why = _classify(m, root, seen)
        if m.archived:
            seen.add(f[2])  # major:minor: the same filesystem mounted twice is archived once
        out.append(m)
    return out


def _classify(m: RemoteMount, root: str, seen: set[str]) -> tuple[bool, str]:
    if m.mountpoint == "/":
        return True, ""  # the system itself, whatever holds it (an overlay in a container)
    if m.mountpoint.startswith(SYSTEM_DIRS) and m.mountpoint.split("/")[1] in ("proc", "sys", "dev", "run"):
        return False, "under /proc, /sys, /dev or /run: the container gets its own"
    if m.fstype in PSEUDO:
        return False, "a kernel pseudo filesystem"
    if m.fstype in MEMORY:
        return False, "in memory (tmpfs): nothing to keep"
    if m.fstype in NETWORK:
        return False, "a network filesystem: archive it where it lives"
    if m.fstype in ("overlay", "aufs"):
        return False, "a container's overlay"
    if m.fstype == "squashfs":
        return False, "a read-only image (a snap)"
    if m.fstype not in LOCAL:
        return False, f"{m.fstype}: not a local block filesystem"
    if root != "/":
        return False, f"a bind mount of {root} of another filesystem"
    return True, ""


def _sizes(mounts: list[RemoteMount], lines: list[str], unit: int) -> None:
    by_mp = {}
    for line in lines[1:]:
        cols = line.split(None, 5)
        if len(cols) == 6 and cols[1].isdigit() and cols[2].isdigit():
            by_mp[cols[5]] = (int(cols[1]) * unit, int(cols[2]) * unit)
    for m in mounts:
        m.size, m.used = by_mp.get(m.mountpoint, (0, 0))


def _writers(lines: list[str]) -> list[tuple[int, str, str]]:
    out = []
    for line in lines:
        pid, _, rest = line.partition(" ")
        cmd, _, path = rest.partition(" ")
        if pid.isdigit() and path:
            out.append((int(pid), cmd, path))
    return out


def _conclude(insp: RemoteInspection) -> None:
    if "GNU tar" not in insp.tar:
        raise Vm2cError(f"{insp.source}: the remote has no GNU tar ({insp.tar or 'no tar at all'}); vm2c runs GNU tar "
                        f"there for owners, xattrs and --one-file-system (apt-get install tar)")
    if not insp.xattrs:
        raise Vm2cError(f"{insp.source}: the remote's tar ({insp.tar}) cannot read xattrs (--xattrs refused): file "
                        f"capabilities, ACLs and SELinux labels would be lost; vm2c needs GNU tar 1.27 or newer there")
    if insp.uid != 0:
        insp.warnings.append(f"logged in as uid {insp.uid}, not root: files only root may read are left out "
                             f"(log in as root)")
    if insp.writers:
        names = sorted({f"{c} (pid {p})" for p, c, _ in insp.writers})[:8]
        insp.warnings.append("processes are writing to files: " + ", ".join(names) +
                             "; stop them first, the copy may be inconsistent")
    if insp.services:
        insp.warnings.append(f"{len(insp.services)} services running ({', '.join(insp.services[:6])}"
                             f"{' ...' if len(insp.services) > 6 else ''}): stop the ones that write data first")


def used_bytes(insp: RemoteInspection) -> int:
    return sum(m.used for m in insp.archived)
