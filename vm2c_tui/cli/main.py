"""The headless face: `vm2c inspect|archive|build|convert|export|doctor|cleanup|tui`."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys

from vm2c_tui import __version__
from vm2c_tui.errors import Vm2cError


def _cmd_inspect(args) -> int:
    from vm2c_tui.cli.common import NoteLine, sources
    from vm2c_tui.read import engine
    from vm2c_tui.text import render_inspection, render_remote

    insp = engine.inspect(sources(args), args.engine, method=args.view, snapshot=args.snapshot, sudo=args.sudo,
                          note=NoteLine())
    if args.json:
        print(json.dumps(insp.to_json(), indent=2))
    else:
        print(render_remote(insp) if hasattr(insp, "mounts") else render_inspection(insp), end="")
    return 0


def _cmd_services(args) -> int:
    from vm2c_tui.cli.common import NoteLine, options, require_root, sources
    from vm2c_tui.convert.conversion import Conversion
    from vm2c_tui.convert.services import guest_services
    from vm2c_tui.text import render_services

    require_root("services", args)
    with Conversion(sources(args), options(args), on_note=NoteLine()) as conv:
        found = guest_services(conv)
    print(json.dumps(found.to_json(), indent=2) if args.json else render_services(found), end="\n" if args.json else "")
    return 0


def _cmd_doctor(args) -> int:
    from vm2c_tui.convert.doctor import checks

    res = checks(args.workdir)
    if args.json:
        print(json.dumps([c.to_json() for c in res], indent=2))
        return 0
    width = max(len(c.name) for c in res)
    for c in res:
        mark = "ok " if c.ok else "-- "
        print(f"{mark} {c.name:{width}}  {c.detail}" + (f"\n      {c.meaning}" if c.meaning else ""))
    return 0


def _cmd_cleanup(args) -> int:
    from vm2c_tui.host.session import cleanup

    lines = cleanup(include_live=args.all)
    print("\n".join(lines) if lines else "nothing to clean up")
    return 0


def _cmd_tui(args) -> int:
    from vm2c_tui.tui.app import run_app

    return run_app(getattr(args, "source", None), getattr(args, "engine", None))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vm2c", description="Turn a VM disk image into a Docker image.")
    p.add_argument("--version", action="version", version=f"vm2c {__version__}")
    p.add_argument("--debug", action="store_true", help="log commands and show tracebacks")
    p.add_argument("--trust-dir", action="append", default=[], metavar="DIR",
                   help="let an image's backing files and extents lie in DIR too (repeatable): only for images "
                        "you trust, since an image names the files qemu opens")
    p.add_argument("--ssh-config", metavar="FILE",
                   help="the ssh client configuration for ssh:// sources (ssh -F FILE; default: ~/.ssh/config)")
    sub = p.add_subparsers(dest="command")

    s = sub.add_parser("inspect", help="show format, partitions, LVM volumes and the root filesystem")
    s.add_argument("source", nargs="+", help="disk image, partition dump, VM (.vbox, .vmx, .ovf, .ova, libvirt XML, "
                                             "folder), or several disk images of one machine")
    s.add_argument("--snapshot", metavar="NAME", help="a VM's snapshot by name (default: its current state)")
    s.add_argument("--sudo", action="store_true", help="ssh:// sources: read the machine through sudo -n")
    s.add_argument("--json", action="store_true")
    s.add_argument("--view", choices=["direct", "nbd", "fuse", "copy"], help="force a raw-view mechanism")
    s.add_argument("--engine", choices=["auto", "kernel", "userspace"], default="auto",
                   help="userspace reads the image in Python (no root); auto picks it when not root")
    s.set_defaults(func=_cmd_inspect)

    s = sub.add_parser("services", help="what the guest runs: its init, enabled services, their ports, its data")
    from vm2c_tui.cli.common import conversion_args

    conversion_args(s)
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=_cmd_services)

    s = sub.add_parser("doctor", help="what this machine offers")
    s.add_argument("--json", action="store_true")
    s.add_argument("--workdir", default=".")
    s.set_defaults(func=_cmd_doctor)

    s = sub.add_parser("cleanup", help="release what an interrupted run left mounted or attached")
    s.add_argument("--all", action="store_true", help="also runs whose process is still alive")
    s.set_defaults(func=_cmd_cleanup)

    s = sub.add_parser("tui", help="the wizard (the default with no command)")
    s.add_argument("source", nargs="?")
    s.add_argument("--engine", choices=["auto", "kernel", "userspace"], default="auto",
                   help="how the image is read (auto: the kernel route as root, user space otherwise)")
    s.set_defaults(func=_cmd_tui)

    from vm2c_tui.cli import archive, image

    archive.add_parsers(sub)
    image.add_parsers(sub)
    return p


def _on_sigterm(signum, frame):
    # Unwind like Ctrl-C so every ExitStack releases its resources.
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # --debug stamps each line with ms since start, so slow steps show up
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING,
                        format=("%(relativeCreated)7.0fms " if args.debug else "") + "%(name)s: %(message)s",
                        stream=sys.stderr)
    signal.signal(signal.SIGTERM, _on_sigterm)
    for d in args.trust_dir:  # read by confine.trusted_dirs(), in this process and the tools it starts
        if not os.path.isdir(d):
            print(f"vm2c: --trust-dir {d}: not a directory", file=sys.stderr)
            return 2
    if args.trust_dir:
        os.environ["VM2C_TRUST_DIRS"] = os.pathsep.join(os.path.realpath(d) for d in args.trust_dir)
    if args.ssh_config:  # read by source/ssh.py, in this process and the wizard's workers
        if not os.path.isfile(args.ssh_config):
            print(f"vm2c: --ssh-config {args.ssh_config}: not a file", file=sys.stderr)
            return 2
        os.environ["VM2C_SSH_CONFIG"] = os.path.realpath(args.ssh_config)
    if args.command is None:
        args.func, args.source = _cmd_tui, None
    try:
        return args.func(args)
    except Vm2cError as exc:
        if args.debug:
            raise
        print(f"vm2c: {exc.message}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("vm2c: interrupted; everything attached or mounted was released", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 141
    except Exception as exc:  # a bug or an unforeseen input: still one line; --debug shows the traceback
        if args.debug:
            raise
        print(f"vm2c: internal error: {type(exc).__name__}: {exc} (run with --debug for details)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
