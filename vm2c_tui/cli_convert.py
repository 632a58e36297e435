"""Sub-commands that move data: archive, build, convert, export."""

from __future__ import annotations

import sys
import time
from contextlib import nullcontext
from pathlib import Path

from .services.archive import Progress
from .text import human


def _conversion_args(s) -> None:
    s.add_argument("source", help="disk image, partition dump, or / for this running system")
    s.add_argument("--root", help="filesystem id of the root (default: the detected one)")
    s.add_argument("--no-fstab", action="store_true", help="take the root filesystem alone")
    s.add_argument("--preset", default="container", choices=["none", "container", "minimal"])
    s.add_argument("--exclude", action="append", default=[], metavar="PATTERN",
                   help="leave out paths matching PATTERN (GNU tar wildcard; repeatable)")
    s.add_argument("--no-sanitize", action="store_true",
                   help="keep /etc/machine-id and the SSH host keys as they are")
    s.add_argument("--view", choices=["direct", "nbd", "fuse", "copy"], help="force a raw-view mechanism")
    s.add_argument("--engine", choices=["auto", "kernel", "userspace"], default="auto",
                   help="kernel: loop devices and mounts, needs root; userspace: reads the image itself, "
                        "no root (optional extra); auto: the kernel route where it can run, userspace otherwise")


def _options(args):
    from .services.conversion import Options

    return Options(root=args.root, use_fstab=not args.no_fstab, preset=args.preset, excludes=args.exclude,
                   sanitize=not args.no_sanitize, view=args.view, engine=args.engine,
                   sparse=getattr(args, "sparse", False))


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


def require_root(what: str, args) -> None:
    """Early, before any work: the kernel route needs root (the user-space engine does not)."""
    import os

    from .services.engine import choose, require_kernel_root

    if os.path.isdir(args.source):
        require_kernel_root("kernel", what)
    else:
        require_kernel_root(choose(args.engine), what)


def _note(msg: str) -> None:
    print(f"vm2c: {msg}", file=sys.stderr)


def _cmd_archive(args) -> int:
    from .services.conversion import Conversion
    from .services.outdir import made_first
    from .text import safe

    out = Path(args.output)
    if not args.dry_run:
        require_root("archive", args)
    with (nullcontext() if args.dry_run else made_first(out)), Conversion(args.source, _options(args)) as conv:
        if args.dry_run:
            conv.inspect()
            print("\n".join(conv.commands(str(out))))
            return 0
        conv.inspect()
        conv.plan()
        prep = conv.prepare(output_dir=out)
        for n in prep.notes:
            _note(safe(n, 500))
        for m in prep.mounted:
            via = "user space" if conv.engine == "userspace" else m.via
            _note(f"{'reading' if via == 'user space' else 'mounted'} {safe(m.fs_id, 60)} at {safe(m.mountpoint)} "
                  f"({m.fstype}, via {via})")
        if args.estimate:
            _note("preset savings: " + ", ".join(f"{k} {human(v)}" for k, v in conv.estimates().items()))
        _note(f"preset {args.preset} leaves out about {human(prep.preset_saving)}; "
              f"expecting about {human(prep.expected_bytes)}")
        bar = ProgressLine()
        res = conv.write_archive(out, bar)
        bar.done()
        wh = prep.whiteout_note()
        if wh:
            _note(safe(wh, 500))
    if args.json:
        _archive_json(conv, res, prep, args)
        return 0
    print(f"{res.tar}: {human(res.size)}, {res.files} entries in {res.seconds:.1f}s")
    if args.sparse:
        print("no Dockerfile: a tar with sparse members cannot become a Docker layer (archive without --sparse)")
        return 0
    print(f"{res.dockerfile}: FROM scratch, ADD img.tar /, CMD [\"{prep.shell}\"]")
    for s in prep.sanitized:
        print(f"sanitised: {s}")
    print(f"next: docker build -t IMAGE:TAG {out}   (or: vm2c build {out} --tag IMAGE:TAG)")
    return 0


def _archive_json(conv, res, prep, args) -> None:
    import json

    print(json.dumps({
        "source": conv.source, "tar": str(res.tar), "dockerfile": None if args.sparse else str(res.dockerfile),
        "size": res.size, "entries": res.files, "seconds": round(res.seconds, 3),
        "root": conv.plans[0].fs_id if conv.plans else "/", "engine": conv.engine, "preset": args.preset,
        "preset_saving": prep.preset_saving, "shell": prep.shell,
        "mounted": [{"id": m.fs_id, "mountpoint": m.mountpoint, "fstype": m.fstype,
                     "via": "user space" if conv.engine == "userspace" else m.via} for m in prep.mounted],
        "sanitized": list(prep.sanitized), "notes": list(prep.notes),
    }, indent=2))


def add_parsers(sub) -> None:
    s = sub.add_parser("archive", help="mount read-only and write DIR/img.tar and DIR/Dockerfile")
    _conversion_args(s)
    s.add_argument("--output", "-o", required=True, metavar="DIR")
    s.add_argument("--dry-run", action="store_true", help="print the equivalent shell commands, run nothing")
    s.add_argument("--sparse", action="store_true",
                   help="store holes as GNU sparse members: a smaller img.tar to keep, NOT for Docker "
                        "(docker save rejects such layers), so no Dockerfile is written")
    s.add_argument("--estimate", action="store_true",
                   help="also estimate what every preset would leave out, before archiving")
    s.add_argument("--json", action="store_true", help="print the result as one JSON document (docs/json.md)")
    s.set_defaults(func=_cmd_archive)
    try:
        from . import cli_image
    except ImportError:
        return
    cli_image.add_parsers(sub, _conversion_args, _options, ProgressLine)
