"""Read-only raw views of a disk image, and loop devices over byte ranges of them.

The mechanism is picked at run time (docs/how-it-works.md, 'Reading a disk'):
  direct   raw images and partition dumps are used as they are;
  nbd      qemu-nbd -r, where /dev/nbd* exists (an ordinary workstation);
  fuse     qemu-storage-daemon serving NBD on a unix socket, nbdfuse showing it as a file,
           where there is no nbd (these VMs);
  copy     qemu-img convert to a sparse temporary raw file, always works;
  flatten  a differencing VDI chain (qemu refuses those), copied by our own reader (flatten.py).
Every qemu runs confined to the image's directory (confine.py).
A filesystem inside is then a read-only loop device at its byte offset, so
neither a kernel partition scan nor device-mapper is needed.
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass

from vm2c_tui.errors import Vm2cError
from vm2c_tui.host.confine import Sandbox
from vm2c_tui.host.daemon import fuse_mounted, nbdfuse_cmd, start_daemon
from vm2c_tui.host.run import run, signals_held, which
from vm2c_tui.host.session import Session, release_loop, release_nbd
from vm2c_tui.read.kernel.flatten import WHY as FLATTEN_WHY
from vm2c_tui.read.kernel.flatten import flatten_vdi
from vm2c_tui.source import diskset
from vm2c_tui.source.magic import ImageInfo


@dataclass
class RawView:
    path: str  # a file or block device with the guest disk's raw bytes
    method: str
    why: str


@dataclass
class Views:
    """The raw views of a VM's disks, placed in one address space (source/diskset.py): a
    filesystem's offset says which view holds it and where."""

    views: list[RawView]
    starts: list[int]
    sizes: list[int]

    @classmethod
    def of(cls, views: list[RawView], sizes: list[int]) -> Views:
        return cls(views, diskset.bases(sizes), sizes)

    def locate(self, offset: int) -> tuple[str, int]:
        k, local = diskset.locate(self.starts, self.sizes, offset)
        return self.views[k].path, local

    def pieces(self, extents: list[tuple[int, int]]) -> list[tuple[str, int, int]]:
        return [(*self.locate(off), n) for off, n in extents]


_NBD_TRIED = False


def _load_nbd() -> None:
    """Load the nbd module once where that is possible (a workstation, as root)."""
    global _NBD_TRIED
    if _NBD_TRIED or glob.glob("/dev/nbd[0-9]*") or os.geteuid() != 0 or not which("modprobe"):
        return
    _NBD_TRIED = True
    run(["modprobe", "nbd", "max_part=0"], check=False, timeout=30)


def available_methods(info: ImageInfo) -> list[tuple[str, str]]:
    """(method, why) in order of preference for this image on this machine."""
    if info.format == "raw":
        return [("direct", "raw image: read as it is, no conversion")]
    if info.format == "vdi" and info.backing_chain:
        return [("flatten", FLATTEN_WHY)]
    if info.at_snapshot:
        return [("copy", f"internal snapshot {info.at_snapshot!r}: qemu-img convert -l copies that state to a "
                         f"temporary sparse raw file")]
    _load_nbd()
    out = []
    if glob.glob("/dev/nbd[0-9]*") and which("qemu-nbd") and os.geteuid() == 0:
        out.append(("nbd", "/dev/nbd* exists: qemu-nbd -r attaches the image read-only"))
    if os.path.exists("/dev/fuse") and which("qemu-storage-daemon") and which("nbdfuse"):
        out.append(("fuse", "no nbd here: a confined qemu-storage-daemon serves a read-only raw view, "
                            "nbdfuse shows it as a file"))
    out.append(("copy", "qemu-img convert to a temporary sparse raw file (uses disk space)"))
    return out


def open_raw(session: Session, info: ImageInfo, method: str | None = None) -> RawView:
    """The first mechanism that works, in order of preference; a failed one (FUSE
    without root, say) falls through to the next, and the view says why."""
    methods = available_methods(info)
    if method:
        methods = [m for m in methods if m[0] == method]
        if not methods:
            raise Vm2cError(f"raw view '{method}' is not available for a {info.display_format} image here")
    failures: list[str] = []
    for name, why in methods:
        try:
            path = _OPENERS[name](session, info)
        except Vm2cError as exc:
            if method or name == methods[-1][0]:
                raise
            failures.append(f"{name} failed: {exc.message}")
            continue
        if failures:
            why = f"{why}; " + "; ".join(failures)
        return RawView(path, name, why)
    raise Vm2cError("no raw view could be opened")  # unreachable: the last failure raised


def _fuse(session: Session, info: ImageInfo) -> str:
    """qemu-storage-daemon, confined to the image's directory (confine.py), serves the raw view
    over NBD on a unix socket in our private directory; nbdfuse, on the host, turns that into a
    file (a FUSE export made inside the sandbox's mount namespace would not be seen outside)."""
    work = session.tempdir("view")
    sock, view, pidfile = work / "nbd.sock", work / "view", work / "nbdfuse.pid"
    view.mkdir(mode=0o700)
    raw = view / "raw"
    start_daemon(session, qsd_cmd(str(info.path), info.format, str(sock)), work / "qsd.log",
            lambda: sock.is_socket(), "qemu-storage-daemon (raw view)", sandbox=Sandbox.for_image(info.path, write=[work]))
    start_daemon(session, nbdfuse_cmd(str(raw), str(sock), str(pidfile)), work / "nbdfuse.log",
            lambda: pidfile.exists() and fuse_mounted(view), "nbdfuse (raw view)", fuse_file=view)
    return str(raw)


def _qemu_value(text: str) -> str:
    """TEXT as one value in qemu's key=value,... options, where ',,' stands for a comma: a path
    with a comma in it would otherwise end the value there and start a new option."""
    return text.replace(",", ",,")


def qsd_cmd(image: str, fmt: str, sock: str) -> list[str]:
    return [
        "qemu-storage-daemon",
        "--blockdev", f"driver=file,node-name=f,filename={_qemu_value(image)},read-only=on",
        "--blockdev", f"driver={fmt},node-name=d,file=f,read-only=on",
        "--nbd-server", f"addr.type=unix,addr.path={_qemu_value(sock)}",
        "--export", "type=nbd,id=e,node-name=d,writable=off",
    ]


def nbd_cmd(image: str, fmt: str, dev: str) -> list[str]:
    return ["qemu-nbd", "-r", "-f", fmt, "-c", dev, image]


def copy_cmd(image: str, fmt: str, raw: str, snapshot: str = "") -> list[str]:
    at = ["-l", f"snapshot.name={_qemu_value(snapshot)}"] if snapshot else []
    return ["qemu-img", "convert", "-f", fmt, *at, "-O", "raw", "-S", "64k", image, raw]


def losetup_cmd(raw: str, offset: int, size: int, direct_io: bool = False) -> list[str]:
    # 512-byte sectors as without direct I/O (newer kernels would take the host disk's, and a
    # 4Kn host would then refuse a 1 KiB-block filesystem); where the host disk or the offset
    # does not fit that, the kernel quietly reads buffered
    dio = ["--direct-io=on", "--sector-size", "512"] if direct_io else []
    return ["losetup", "-f", "--show", "-r", *dio, "-o", str(offset), "--sizelimit", str(size), raw]


def _nbd(session: Session, info: ImageInfo) -> str:
    for dev in sorted(glob.glob("/dev/nbd[0-9]*"), key=lambda d: int(d[8:])):
        if os.path.exists(f"/sys/block/{os.path.basename(dev)}/pid"):
            continue
        with signals_held():
            proc = run(nbd_cmd(str(info.path), info.format, dev), check=False,
                       sandbox=Sandbox.for_image(info.path, devices=[dev]))
            if proc.returncode == 0:
                session.track("nbd", dev, lambda d=dev: release_nbd(d))
                return dev
    raise Vm2cError("no free /dev/nbd device")


def _copy(session: Session, info: ImageInfo) -> str:
    work = session.tempdir("copy")
    raw = work / "disk.raw"
    run(copy_cmd(str(info.path), info.format, str(raw), info.at_snapshot), what="qemu-img convert", timeout=None,
        sandbox=Sandbox.for_image(info.path, write=[work]))
    return str(raw)


_OPENERS = {"direct": lambda session, info: str(info.path), "nbd": _nbd, "fuse": _fuse, "copy": _copy,
            "flatten": flatten_vdi}


def loop_device(session: Session, raw: str, offset: int, size: int, direct_io: bool = False) -> str:
    """A read-only loop device over RAW[offset:offset+size] (pagecache.direct_io_pays says
    when DIRECT_IO is worth asking for)."""
    return attach_loop(session, raw, losetup_cmd(raw, offset, size, direct_io),
                       losetup_cmd(raw, offset, size) if direct_io else None)


def attach_loop(session: Session, raw: str, argv: list[str], fallback: list[str] | None = None) -> str:
    """Run ARGV (losetup -f --show ... RAW, as read/kernel/steps.py records it), track the device
    it prints; FALLBACK when ARGV asked for direct I/O the kernel refused."""
    backing = os.path.realpath(raw)
    with signals_held():
        proc = run(argv, what="losetup", check=fallback is None)
        dev = proc.stdout.decode().strip()
        if proc.returncode != 0 and fallback is not None:
            # direct I/O is only a speed-up: losetup without LOOP_CONFIGURE attaches first, then
            # fails if the kernel will not switch it on; let go of that device, read buffered
            if dev.startswith("/dev/loop"):
                run(["losetup", "-d", dev], check=False)
            dev = run(fallback, what="losetup").stdout.decode().strip()
        session.track("loop", dev, lambda: release_loop(dev, backing), backing=backing)
    return dev
