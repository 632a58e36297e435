"""build, convert, export: the faces of the image service."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from vm2c_tui.cli.common import ProgressLine, conversion_args, options, require_root
from vm2c_tui.errors import Vm2cError
from vm2c_tui.text import human, safe


def _print_result(res, smoke, out=sys.stdout) -> None:
    tag = res.tags[0] if res.tags else res.image_id
    print(f"image {res.image_id[:19]}  {', '.join(res.tags)}  {human(res.size)}  {res.layers} layer(s)  "
          f"[{res.method}]", file=out)
    if smoke is not None:
        if smoke.ok:
            first = next((l for l in smoke.os_release.splitlines() if l.startswith("PRETTY_NAME=")), "")
            print(f"smoke test: ok ({safe(smoke.shell)} runs; {safe(first)})", file=out)
        else:
            print(f"smoke test FAILED ({safe(smoke.shell)}): {safe(smoke.error, 400)} -- the image is kept", file=out)
    print(f"next: docker run -it --rm {tag} {safe(smoke.shell) if smoke else '/bin/sh'}", file=out)
    print(f"      docker save -o image.tar {tag}", file=out)


def _cmd_build(args) -> int:
    from vm2c_tui.archive.tarfacts import has_sparse_members
    from vm2c_tui.image import daemon as image
    from vm2c_tui.image.dockerfile import changes

    t0 = time.monotonic()
    ctx = Path(args.dir)
    tar, dockerfile = ctx / "img.tar", ctx / "Dockerfile"
    if not tar.is_file():
        raise Vm2cError(f"{ctx}: no img.tar here (make one with vm2c archive SOURCE --output {ctx})")
    if not dockerfile.is_file() and has_sparse_members(tar):
        raise Vm2cError(f"{tar} holds GNU sparse members (vm2c archive --sparse): Docker cannot save such a "
                        f"layer; archive again without --sparse")
    image.parse_reference(args.tag)
    shell, labels = _dockerfile_settings(dockerfile)
    image.require_room(tar.stat().st_size, args.method)
    start = time.monotonic()
    if args.method == "dockerfile":
        _warn_dropped_xattrs(tar)
        image_id = image.build_dockerfile(ctx, args.tag, on_log=lambda l: print(l, file=sys.stderr))
    else:
        image_id = image.import_file(tar, args.tag, changes(shell, labels))
    timings = {"build": round(time.monotonic() - start, 3)}
    res = image.describe(image_id, args.method)
    smoke = _smoke(image, image_id, shell, args.no_smoke, timings)
    timings["total"] = round(time.monotonic() - t0, 3)
    res.timings = timings
    _report(args, res, smoke, {"source": str(tar), "labels": labels})
    return 0 if smoke is None or smoke.ok else 3


def _smoke(image, image_id: str, shell: str, skip: bool, timings: dict[str, float]):
    if skip:
        return None
    t = time.monotonic()
    smoke = image.smoke_test(image_id, shell)
    timings["smoke"] = round(time.monotonic() - t, 3)
    return smoke


def _report(args, res, smoke, source: dict) -> None:
    """--json: one document (the same keys for build and convert); else the lines to read."""
    if args.json:
        print(json.dumps({"image_id": res.image_id, "tags": res.tags, "size": res.size, "method": args.method,
                          **source, "layers": res.layers, "smoke": smoke.to_json() if smoke else None,
                          "timings": res.timings}, indent=2))
    else:
        _print_result(res, smoke)
        print("timings: " + ", ".join(f"{k} {v:.1f}s" for k, v in res.timings.items()))


def _dockerfile_settings(dockerfile: Path) -> tuple[str, dict[str, str]]:
    shell, labels = "/bin/sh", {}
    if dockerfile.is_file():
        for line in dockerfile.read_text().splitlines():
            if line.startswith("CMD "):
                try:
                    shell = json.loads(line[4:])[0]
                except (ValueError, IndexError):
                    pass
            elif line.startswith("LABEL "):
                k, _, v = line[6:].partition("=")
                try:
                    labels[k] = json.loads(v)
                except ValueError:
                    labels[k] = v
    return shell, labels


def _warn_dropped_xattrs(tar: Path) -> None:
    from vm2c_tui.archive.tarfacts import dropped_by_add

    lost = dropped_by_add(tar)
    if lost:
        print(f"vm2c: the dockerfile route's ADD keeps only security.capability; {len(lost)} file(s) lose "
              "xattrs (use --method import to keep them):", file=sys.stderr)
        for path, names in lost[:20]:
            print(f"  {path}: {', '.join(names)}", file=sys.stderr)


def _cmd_convert(args) -> int:
    from vm2c_tui.convert.conversion import Conversion
    from vm2c_tui.host.outdir import require_dir, require_file_target
    from vm2c_tui.image import daemon as image
    from vm2c_tui.image.dockerfile import changes
    from vm2c_tui.image.loadable import write_image_archive

    image.parse_reference(args.tag)
    require_root("convert", args)
    timings: dict[str, float] = {}
    t0 = time.monotonic()
    save = Path(args.save) if args.save else None
    if save:
        require_file_target(save, "--save")
    if args.workdir:
        require_dir(args.workdir, "--workdir")
    with Conversion(args.source, options(args)) as conv:
        insp = conv.inspect()
        conv.plan()
        timings["inspect"] = round(time.monotonic() - t0, 3)
        t1 = time.monotonic()
        prep = conv.prepare()
        timings["mount"] = round(time.monotonic() - t1, 3)
        for n in prep.notes:
            print(f"vm2c: {n}", file=sys.stderr)
        bar = ProgressLine()
        labels = conv.labels()
        t2 = time.monotonic()
        daemon = _daemon_up()
        if not daemon:
            if save is None:
                image.client(hint=image.SAVE_HINT)  # raises the clear "no daemon" error
            work = conv.session.tempdir("tar", base=str(save.parent))
            res = conv.write_archive(work, bar)
            bar.done()
            load = write_image_archive(res.tar, save, args.tag, prep.shell, labels)
            timings["archive"] = round(time.monotonic() - t2, 3)
            print(f"no Docker daemon answered: wrote {save} ({human(save.stat().st_size)}); load it with: {load}")
            return 0
        image.require_room(prep.expected_bytes, args.method, smoke=not args.no_smoke)
        if args.method == "dockerfile":
            work = conv.session.tempdir("build", base=args.workdir)
            res = conv.write_archive(work, bar)
            bar.done()
            timings["archive"] = round(time.monotonic() - t2, 3)
            _warn_dropped_xattrs(res.tar)
            t3 = time.monotonic()
            image_id = image.build_dockerfile(work, args.tag, on_log=lambda l: print(l, file=sys.stderr))
            timings["build"] = round(time.monotonic() - t3, 3)
        else:
            # the tree is unmounted while the daemon commits the layer (tar is done by then)
            image_id = image.import_stream(conv.stream(bar), args.tag, changes(prep.shell, labels),
                                           after_body=conv.release)
            bar.done()
            wh = prep.whiteout_note()
            if wh:
                print(f"vm2c: {wh}", file=sys.stderr)
            timings["archive+import"] = round(time.monotonic() - t2, 3)
        root_id = conv.plans[0].fs_id if conv.plans else "/"
    res = image.describe(image_id, args.method)
    smoke = _smoke(image, image_id, prep.shell, args.no_smoke, timings)
    if save:
        t5 = time.monotonic()
        image.save(args.tag, save)  # by tag, so `docker load` restores the name
        timings["save"] = round(time.monotonic() - t5, 3)
    timings["total"] = round(time.monotonic() - t0, 3)
    res.timings = timings
    os_info = insp.root_volume.os.to_json() if insp and insp.root_volume and insp.root_volume.os else None
    _report(args, res, smoke, {"source": conv.source, "root": root_id, "os": os_info})
    return 0 if smoke is None or smoke.ok else 3


def _daemon_up() -> bool:
    from vm2c_tui.image.dockerd import daemon_answers

    return daemon_answers()


def _cmd_export(args) -> int:
    from vm2c_tui.image import daemon as image

    res, before = image.export_container(args.container, args.tag)
    if args.json:
        print(json.dumps({"image_id": res.image_id, "tags": res.tags, "size": res.size, "size_before": before,
                          "saved": before - res.size, "layers": res.layers}, indent=2))
        return 0
    print(f"{args.container}: image {human(before)} -> {res.tags[0] if res.tags else res.image_id}: "
          f"{human(res.size)} ({human(before - res.size)} saved, {res.layers} layer)")
    return 0


NO_SMOKE = "skip the smoke test (on a vfs daemon every container copies the whole image)"


def add_parsers(sub) -> None:
    s = sub.add_parser("build", help="build an image from DIR/img.tar (the archive step's output)")
    s.add_argument("dir")
    s.add_argument("--tag", required=True, metavar="REPO:TAG")
    s.add_argument("--method", choices=["dockerfile", "import"], default="import")
    s.add_argument("--no-smoke", action="store_true", help=NO_SMOKE)
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=_cmd_build)

    s = sub.add_parser("convert", help="the whole conversion: disk image to Docker image")
    conversion_args(s)
    s.add_argument("--tag", required=True, metavar="REPO:TAG")
    s.add_argument("--method", choices=["import", "dockerfile"], default="import")
    s.add_argument("--save", metavar="PATH", help="also write a loadable image archive (needs no daemon)")
    s.add_argument("--workdir", default=None, help="where the dockerfile route writes img.tar (default /tmp)")
    s.add_argument("--no-smoke", action="store_true", help=NO_SMOKE)
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=_cmd_convert)

    s = sub.add_parser("export", help="slim an image: export a container you stripped, re-import it")
    s.add_argument("container")
    s.add_argument("--tag", required=True, metavar="REPO:TAG")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=_cmd_export)
