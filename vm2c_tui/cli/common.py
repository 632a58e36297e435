"""What the sub-commands that convert share: the source arguments, the options they make, the
progress line, and the early root check."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from vm2c_tui.archive.gnutar import Progress
from vm2c_tui.text import human


def conversion_args(s) -> None:
    s.add_argument("source", nargs="+", help="disk image, partition dump, VM (.vbox, .vmx, .ovf, .ova, libvirt XML, "
                                             "or its folder), several disk images of one machine, or / for this "
                                             "running system")
    s.add_argument("--snapshot", metavar="NAME", help="a VM's snapshot by name (default: its current state)")
    s.add_argument("--root", help="filesystem id of the root (default: the detected one)")
    s.add_argument("--no-fstab", action="store_true", help="take the root filesystem alone")
    s.add_argument("--preset", default="container", choices=["none", "container", "minimal"])
    s.add_argument("--exclude", action="append", default=[], metavar="PATTERN",
                   help="leave out paths matching PATTERN (GNU tar wildcard; repeatable)")
    s.add_argument("--no-sanitize", action="store_true",
                   help="keep /etc/machine-id and the SSH host keys as they are")
    s.add_argument("--view", choices=["direct", "nbd", "fuse", "copy"], help="force a raw-view mechanism")
    s.add_argument("--sudo", action="store_true",
                   help="ssh:// sources: run tar there through sudo -n (the login user is not root)")
    s.add_argument("--compress", choices=["zstd", "gzip"], default="",
                   help="ssh:// sources: compress the stream on the wire (the remote needs the tool; a slow link)")
    s.add_argument("--stop-services", type=lambda v: [n for n in v.split(",") if n], default=[], metavar="A,B",
                   help="ssh:// sources: stop these services there while tar reads, start them again after "
                        "(success or failure)")
    s.add_argument("--limit-rate", type=rate, default=0, metavar="RATE",
                   help="read at most RATE a second (8M, 1G; whole MiB): keeps a busy host or disk responsive")
    s.add_argument("--run", default="shell", metavar="MODE",
                   help="how the image runs: system (the guest's init as PID 1), service:NAME (one of its "
                        "services, `vm2c services` lists them) or shell (default)")
    s.add_argument("--engine", choices=["auto", "kernel", "userspace"], default="auto",
                   help="kernel: loop devices and mounts, needs root; userspace: reads the image itself, "
                        "no root (optional extra); auto: the kernel route where it can run, userspace otherwise")


def rate(text: str) -> int:
    """8M, 512K, 1G, 1048576, 8MiB/s: bytes a second (binary units, as human() prints them)."""
    import argparse
    import re

    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([KMG]?)(?:i?B)?(?:/s)?", text.strip(), re.IGNORECASE)
    if not m:
        raise argparse.ArgumentTypeError(f"{text!r} is no rate (say 8M or 1G)")
    return int(float(m.group(1)) * {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}[m.group(2).upper()])


def sources(args):
    """What Conversion takes: the one source, or one machine's disk images."""
    return args.source if len(args.source) > 1 else args.source[0]


def options(args):
    from vm2c_tui.convert.conversion import Options

    return Options(root=args.root, use_fstab=not args.no_fstab, preset=args.preset, excludes=args.exclude,
                   sanitize=not args.no_sanitize, view=args.view, engine=args.engine,
                   sparse=getattr(args, "sparse", False), snapshot=args.snapshot, limit_rate=args.limit_rate,
                   sudo=args.sudo, compress=args.compress,
                   stop_services=args.stop_services, run=args.run)


class ProgressLine:
    """One line rewritten in place on a terminal; a few plain lines otherwise."""

    def __init__(self, stream=sys.stderr):
        self.stream = stream
        self.tty = stream.isatty()
        self.last = 0.0

    def __call__(self, p: Progress) -> None:
        now = time.monotonic()
        if not self.tty and now - self.last < 5 and p.bytes_done != p.bytes_total:
            return
        self.last = now
        eta = f"{p.eta:.0f}s" if p.eta is not None else "-"
        line = (f"{100 * p.fraction:5.1f}%  {human(p.bytes_done)}/{human(p.bytes_total)}  "
                f"{p.files_done} files  {human(p.rate)}/s  ETA {eta}")
        if self.tty:
            self.stream.write("\r\x1b[K" + line[:120])
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def done(self) -> None:
        if self.tty:
            self.stream.write("\n")


class NoteLine:
    """A note that updates (a copy's progress) as a line every 5 s: other lines come between."""

    def __init__(self, stream=sys.stderr, every: float = 5):
        self.stream, self.every, self.last = stream, every, -every

    def __call__(self, text: str) -> None:
        now = time.monotonic()
        if now - self.last >= self.every or text.startswith("copied "):
            self.last = now
            self.stream.write(f"vm2c: {text}\n")
            self.stream.flush()


def require_root(what: str, args) -> None:
    """Early, before any work: the kernel route needs root (the user-space engine does not)."""

    from vm2c_tui.read.engine import choose, require_kernel_root
    from vm2c_tui.source.ssh import is_remote_machine
    from vm2c_tui.source.vm.resolve import definition_in

    first = args.source[0]
    if is_remote_machine(first):
        return  # tar runs on the remote; here only ssh and the output file
    if os.path.isdir(first) and definition_in(Path(first)) is None:  # a live tree, not a VM folder
        require_kernel_root("kernel", what)
    else:
        require_kernel_root(choose(args.engine), what)
