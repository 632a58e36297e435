"""What this machine offers, and what it means for a conversion."""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass

from vm2c_tui.host.run import run, which
from vm2c_tui.host.system import free_space, kernel_filesystems
from vm2c_tui.image import writeback
from vm2c_tui.image.dataroot import DataRoot, local_data_root
from vm2c_tui.read import userspace


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    meaning: str

    def to_json(self) -> dict:
        return {"name": self.name, "ok": self.ok, "detail": self.detail, "meaning": self.meaning}


def _version(cmd: list[str]) -> str:
    if not which(cmd[0]):
        return ""
    out = run(cmd, check=False, timeout=10)
    return (out.stdout or out.stderr).decode(errors="replace").strip().splitlines()[0] if out.stdout or out.stderr else "?"


def checks(workdir: str = ".") -> list[Check]:
    root = os.geteuid() == 0
    us = userspace.available()
    out = [Check("root", root, "uid 0" if root else f"uid {os.geteuid()}",
                 "can attach and mount images (kernel route)" if root else
                 "the kernel route needs root; the user-space engine does not" if us else
                 "inspect lists tables, LVM and ext filesystems; archive needs root or the user-space engine")]
    out.append(Check("user-space engine", us, "dissect modules installed" if us else "not installed",
                     "inspect and archive without root, nbd, FUSE or mount (--engine userspace; auto when not root)"
                     if us else "pip install 'vm2c-tui[userspace]' (AGPL-3.0 dissect modules) to convert without root"))
    nbd = bool(glob.glob("/dev/nbd[0-9]*"))
    out.append(Check("nbd", nbd, "/dev/nbd* present" if nbd else "no /dev/nbd* (module not loaded or absent)",
                     "qemu-nbd attaches non-raw images" if nbd else "non-raw images are read through FUSE or a raw copy"))
    loops = os.path.exists("/dev/loop-control")
    out.append(Check("loop", loops, "/dev/loop-control" if loops else "missing",
                     "filesystems are read through read-only loop devices at their offsets" if loops
                     else "cannot mount anything: archive will not work"))
    sandbox = bool(which("bwrap"))
    out.append(Check("sandbox", sandbox, "bwrap (bubblewrap)" if sandbox else "bwrap missing",
                     "qemu and the tools that open an image see only the image's directory" if sandbox else
                     "vm2c refuses to let qemu open an image unconfined: apt-get install bubblewrap"))
    fuse = os.path.exists("/dev/fuse") and all(map(which, ("qemu-storage-daemon", "nbdfuse", "bwrap")))
    out.append(Check("fuse", fuse, "/dev/fuse + qemu-storage-daemon + nbdfuse" if fuse else
                     "missing /dev/fuse, qemu-storage-daemon, nbdfuse or bwrap",
                     "qcow2/vdi/vmdk/vhd(x) read through a raw view (confined qemu over NBD, nbdfuse)" if fuse
                     else "non-raw images are copied to a raw temp file"))
    dm = os.path.exists("/dev/mapper/control")
    out.append(Check("device-mapper", dm, "/dev/mapper/control" if dm else "absent",
                     "not needed: linear LVs are read at their byte offsets, LVs in pieces "
                     "in user space or through a joined copy"))
    fs = kernel_filesystems()
    for t in ("ext4", "xfs", "btrfs", "vfat"):
        ok = t in fs
        out.append(Check(f"fs:{t}", ok, "kernel can mount it" if ok else "not in /proc/filesystems",
                         "" if ok else ("EFI partitions are read with mtools instead" if t == "vfat"
                                        else f"{t} filesystems are listed but cannot be archived")))
    for tool, cmd in (("qemu-img", ["qemu-img", "--version"]), ("GNU tar", ["tar", "--version"]),
                      ("sfdisk", ["sfdisk", "--version"]), ("blkid", ["blkid", "--version"]),
                      ("mtools", ["mcopy", "--version"])):
        v = _version(cmd)
        out.append(Check(tool, bool(v), v or "not found", "" if v else "install it (scripts/setup does)"))
    out += _docker()
    for tool, why in (("nsenter", "--run service:NAME's smoke test reaches the service's port inside its container"),
                      ("docker-compose", "reads the compose.yaml vm2c writes (`docker-compose config`); optional")):
        found = which(tool)
        out.append(Check(tool, bool(found), found or "not found", why))
    free = free_space(workdir)
    out.append(Check("work dir space", free > 1 << 30, f"{free / (1 << 30):.1f} GiB free in {os.path.abspath(workdir)}",
                     "img.tar needs about the used size of the guest filesystems"))
    return out


def _docker() -> list[Check]:
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    try:
        import docker

        client = docker.from_env(timeout=5)
        v, info = client.version(), client.info()
        root = local_data_root(client, host)
        client.close()
    except Exception as exc:  # any failure means: no usable daemon
        return [Check("docker", False, f"{host}: no answer ({type(exc).__name__})",
                      "vm2c can still write img.tar and a loadable image archive (--save)")]
    out = [Check("docker", True, f"{host}: Docker {v.get('Version')} (API {v.get('ApiVersion')})",
                 "vm2c build/convert can import and run images")]
    cgroup = str(info.get("CgroupVersion") or "1")
    out.append(Check("cgroup", True, f"v{cgroup} ({info.get('CgroupDriver', '?')} driver)",
                     "--run system boots systemd with -v /sys/fs/cgroup:/sys/fs/cgroup:ro" if cgroup != "2" else
                     "--run system boots systemd with --cgroupns=host -v /sys/fs/cgroup:/sys/fs/cgroup:rw "
                     "(untried by vm2c's tests, whose host has v1)"))
    if root is not None:
        out.append(_data_root(root))
    return out


def _data_root(root: DataRoot) -> Check:
    fs = root.fs
    detail = f"{root.path} ({root.driver}) on {fs.fstype}{' without a journal' if fs.journal is False else ''}, " \
             f"{fs.free / (1 << 30):.1f} GiB free"
    meaning = "an imported image needs about the used size of the guest filesystems here"
    if writeback.enabled():
        meaning += ("; vm2c has the kernel write it back while the import runs (syncfs once a second), so "
                    "the first container does not wait for it (VM2C_EARLY_WRITEBACK=0 turns that off)")
    if fs.journal is False:
        meaning += ("; ext4 without a journal skips the inodes freed in the last minutes, so an import "
                    "right after deleting a large image can take twice as long or more (README, Benchmarks)")
    return Check("docker data root", fs.free > 1 << 30, detail, meaning)
