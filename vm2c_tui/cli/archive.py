"""vm2c archive: a disk image (or this machine) to DIR/img.tar and DIR/Dockerfile."""

from __future__ import annotations

import sys
from contextlib import nullcontext
from pathlib import Path

from vm2c_tui.cli.common import NoteLine, ProgressLine, conversion_args, options, require_root, sources
from vm2c_tui.text import human


def _note(msg: str) -> None:
    print(f"vm2c: {msg}", file=sys.stderr)


def _cmd_archive(args) -> int:
    from vm2c_tui.convert.conversion import Conversion
    from vm2c_tui.convert.dryrun import render_commands
    from vm2c_tui.host.outdir import made_first
    from vm2c_tui.text import safe

    out = Path(args.output)
    if not args.dry_run:
        require_root("archive", args)
    with (nullcontext() if args.dry_run else made_first(out)), Conversion(sources(args), options(args),
                                                                                        on_note=NoteLine()) as conv:
        if args.dry_run:
            conv.inspect()
            print("\n".join(render_commands(conv, str(out))))
            return 0
        conv.inspect()
        conv.plan()
        prep = conv.prepare(output_dir=out)
        conv.run_plan()  # a --run the guest cannot run is refused before anything is said or written
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
    _print_recipe(res, prep, conv.run_plan(), out)
    for s in prep.sanitized:
        print(f"sanitised: {s}")
    print(f"next: docker build -t IMAGE:TAG {out}   (or: vm2c build {out} --tag IMAGE:TAG)")
    return 0


def _print_recipe(res, prep, run, out: Path) -> None:
    from vm2c_tui.text import safe

    if run.mode == "shell":
        print(f"{res.dockerfile}: FROM scratch, ADD img.tar /, CMD [\"{prep.shell}\"]")
        return
    print(f"{res.dockerfile}: FROM scratch, ADD img.tar /, the --run {run.mode} layer ({out}/run/): "
          + "; ".join(c for c in run.config if not c.startswith("ENV PATH=")))
    for n in run.notes:
        print(f"run: {safe(n, 500)}")


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
        **({"run": conv.run_plan().to_json()} if args.run != "shell" else {}),
    }, indent=2))


def add_parsers(sub) -> None:
    s = sub.add_parser("archive", help="mount read-only and write DIR/img.tar and DIR/Dockerfile")
    conversion_args(s)
    s.add_argument("--output", "-o", required=True, metavar="DIR")
    s.add_argument("--dry-run", action="store_true", help="print the equivalent shell commands, run nothing")
    s.add_argument("--sparse", action="store_true",
                   help="store holes as GNU sparse members: a smaller img.tar to keep, NOT for Docker "
                        "(docker save rejects such layers), so no Dockerfile is written")
    s.add_argument("--estimate", action="store_true",
                   help="also estimate what every preset would leave out, before archiving")
    s.add_argument("--json", action="store_true", help="print the result as one JSON document (docs/json.md)")
    s.set_defaults(func=_cmd_archive)
