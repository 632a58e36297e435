"""Facts about this machine and its processes (psutil)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import psutil

VM_NAMES = ("qemu", "kvm", "virtualbox", "vboxheadless", "vboxsvc", "vmware", "vmx", "virt", "hyperv")


@dataclass
class Holder:
    pid: int
    name: str
    mode: str  # r | w

    def describe(self) -> str:
        return f"{self.name} (pid {self.pid})"


def holders(path: str) -> list[Holder]:
    """Processes that have PATH open (a VM still running on its disk)."""
    real = os.path.realpath(path)
    me = os.getpid()
    out = []
    for proc in psutil.process_iter(["pid", "name"]):
        if proc.info["pid"] == me:
            continue
        try:
            for f in proc.open_files():
                if f.path == real:
                    out.append(Holder(proc.info["pid"], proc.info["name"] or "?", getattr(f, "mode", "r")))
                    break
        except (psutil.AccessDenied, psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
    return out


def holder_warning(path: str) -> str | None:
    hs = [h for h in holders(path) if not h.name.startswith("qemu-storage")]
    if not hs:
        return None
    names = ", ".join(h.describe() for h in hs)
    vm = any(any(n in h.name.lower() for n in VM_NAMES) for h in hs)
    what = "a running VM" if vm else "another process"
    return f"{path} is open in {what}: {names}. Shut it down first, or the copy may be inconsistent."


def free_space(path: str) -> int:
    while not os.path.exists(path):
        path = os.path.dirname(path) or "/"
    return psutil.disk_usage(path).free


@dataclass
class Filesystem:
    fstype: str
    device: str  # as named in /sys/block ("vda", "nvme0n1p2", "dm-0"); "" when not a block device
    free: int
    journal: bool | None  # ext3/ext4 only


def filesystem_of(path: str) -> Filesystem:
    """The filesystem holding PATH (the last mount of its device, as the kernel resolves it)."""
    st = os.stat(path)
    dev = f"{os.major(st.st_dev)}:{os.minor(st.st_dev)}"
    fstype = "?"
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields, _, rest = line.partition(" - ")
            if fields.split()[2] == dev:
                fstype = rest.split()[0]
    try:
        device = os.path.basename(os.readlink(f"/sys/dev/block/{dev}"))
    except OSError:
        device = ""
    return Filesystem(fstype, device, free_space(path), _journal(fstype, device))


def _journal(fstype: str, device: str) -> bool | None:
    """Without a journal, ext4 skips every inode freed in the last 1-5 minutes when it
    allocates (recently_deleted): a docker import right after an image was deleted crawls."""
    if fstype not in ("ext3", "ext4") or not device:
        return None
    try:
        return Path(f"/sys/fs/ext4/{device}/journal_task").read_text().strip() != "<none>"
    except OSError:
        return None


def writers_on(tree: str = "/") -> list[tuple[int, str, str]]:
    """(pid, name, file) of processes with files open for writing under TREE, on its filesystem."""
    out = []
    dev = os.stat(tree).st_dev
    prefix = os.path.realpath(tree).rstrip("/") + "/"
    for proc in psutil.process_iter(["pid", "name"]):
        try:
            for f in proc.open_files():
                if f.mode in ("w", "a", "r+", "a+") and f.path.startswith(prefix):
                    try:
                        if os.stat(f.path).st_dev == dev:
                            out.append((proc.info["pid"], proc.info["name"], f.path))
                    except OSError:
                        pass
        except (psutil.AccessDenied, psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
    return out


DRIVER = {"ext2": "ext4", "ext3": "ext4"}  # the ext4 driver reads all three


def kernel_filesystems() -> set[str]:
    with open("/proc/filesystems") as f:
        return {line.split()[-1] for line in f if line.strip()}


# The filesystems vm2c lets the kernel parse. A guest's fstab or --root may name any type, and a
# crafted squashfs, erofs or whatever module a workstation has loaded is kernel attack surface:
# those are read in user space where vm2c can, or listed as not read.
KERNEL_FS = frozenset({"ext2", "ext3", "ext4", "xfs", "btrfs"})


def can_mount(fstype: str) -> bool:
    return fstype in KERNEL_FS and DRIVER.get(fstype, fstype) in kernel_filesystems()


def is_root() -> bool:
    return os.geteuid() == 0


def cgroup_version() -> str:
    """This machine's cgroup version ("2": the unified hierarchy alone), for the run flags
    written when no daemon answers to say its own."""
    return "2" if os.path.exists("/sys/fs/cgroup/cgroup.controllers") else "1"


def listening_ports() -> set[int]:
    """TCP ports something on this machine (this network namespace) listens on."""
    try:
        return {c.laddr.port for c in psutil.net_connections("tcp") if c.status == psutil.CONN_LISTEN and c.laddr}
    except (psutil.Error, OSError):
        return set()


def publish(ports: list[int]) -> list[tuple[int, int]]:
    """(host port, container port) for PORTS: the same port here, unless something on this
    machine listens there already (its own sshd on 22, most often): then 10000 above it, or
    the next port free above that."""
    taken, out = listening_ports(), []
    for port in ports:
        host = port
        if host in taken:
            host = port + 10000 if port + 10000 < 65536 else 20000
            while host in taken and host < 65535:
                host += 1
        taken.add(host)
        out.append((host, port))
    return out
