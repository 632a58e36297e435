"""build, convert, export: the faces of the image service."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from vm2c_tui.cli.common import NoteLine, ProgressLine, conversion_args, options, require_root, sources
from vm2c_tui.errors import Vm2cError
from vm2c_tui.text import human, safe


def _print_result(res, smoke, out=sys.stdout, run=None, cgroup: str = "1") -> None:
    from vm2c_tui.image.dockerfile import run_commands

    tag = res.tags[0] if res.tags else res.image_id
    print(f"image {res.image_id[:19]}  {', '.join(res.tags)}  {human(res.size)}  {res.layers} layer(s)  "
          f"[{res.method}]", file=out)
    if smoke is not None and smoke.mode != "shell":
        state = "ok" if smoke.ok else "FAILED"
        print(f"smoke test of --run {smoke.mode}: {state}" + ("" if smoke.ok else " -- the image is kept"), file=out)
        for line in smoke.detail or [smoke.error]:
            print(f"  {safe(line, 400)}", file=out)
    elif smoke is not None:
        if smoke.ok:
            first = next((l for l in smoke.os_release.splitlines() if l.startswith("PRETTY_NAME=")), "")
            print(f"smoke test: ok ({safe(smoke.shell)} runs; {safe(first)})", file=out)
        else:
            print(f"smoke test FAILED ({safe(smoke.shell)}): {safe(smoke.error, 400)} -- the image is kept", file=out)
    if run is not None and run.mode != "shell":
        for i, line in enumerate(run_commands(tag, run, "/bin/sh", cgroup)):
            print(f"{'next: ' if i == 0 else '      '}{line}", file=out)
        if run.system and run.init == "systemd":
            print(f"      (the cgroup flags are those of this daemon's cgroup v{cgroup}"
                  + ("; on v2 they are untried by vm2c's tests, whose host has v1)" if cgroup == "2" else ")"), file=out)
    else:
        print(f"next: docker run -it --rm {tag} {safe(smoke.shell) if smoke else '/bin/sh'}", file=out)
    print(f"      docker save -o image.tar {tag}", file=out)


def _cmd_build(args) -> int:
    from vm2c_tui.archive.tarfacts import has_sparse_members
    from vm2c_tui.image import flow, runlayer

    t0 = time.monotonic()
    ctx = Path(args.dir)
    tar, dockerfile = ctx / "img.tar", ctx / "Dockerfile"
    if not tar.is_file():
        raise Vm2cError(f"{ctx}: no img.tar here (make one with vm2c archive SOURCE --output {ctx})")
    if not dockerfile.is_file() and has_sparse_members(tar):
        raise Vm2cError(f"{tar} holds GNU sparse members (vm2c archive --sparse): Docker cannot save such a "
                        f"layer; archive again without --sparse")
    shell, labels = _dockerfile_settings(dockerfile)
    run = runlayer.read_plan(ctx)  # what `vm2c archive --run` decided
    recipe = flow.Recipe(args.tag, args.method, shell, labels, smoke=not args.no_smoke, run=run,
                         run_context=ctx / runlayer.DIR if run else None)
    flow.check(recipe, tar.stat().st_size)
    if args.method == "dockerfile":
        _warn_dropped_xattrs(tar)
    built = flow.make(recipe, tar=tar, on_log=_build_log(args.method))
    built.result.timings["total"] = round(time.monotonic() - t0, 3)
    _write_run_files(ctx, args.tag, run, built.cgroup)
    _report(args, built, {"source": str(tar), "labels": labels}, run)
    return 0 if built.smoke is None or built.smoke.ok else 3


def _build_log(method: str):
    """`docker build`'s log goes to stderr; the import route prints nothing while it runs."""
    return (lambda line: print(line, file=sys.stderr)) if method == "dockerfile" else None


def _write_run_files(outdir: Path | None, tag: str, run, cgroup: str) -> None:
    """compose.yaml and kubernetes.yaml for a run mode, beside the image's files."""
    from vm2c_tui.image.compose import write_run_files

    if outdir is not None and run is not None and run.mode != "shell":
        written = write_run_files(outdir, tag, run, cgroup)
        print(f"vm2c: wrote {' and '.join(map(str, written))}", file=sys.stderr)


def _report(args, built, source: dict, run=None) -> None:
    """--json: one document (the same keys for build and convert); else the lines to read."""
    res, smoke = built.result, built.smoke
    if args.json:
        print(json.dumps({"image_id": res.image_id, "tags": res.tags, "size": res.size, "method": args.method,
                          **source, "layers": res.layers, "smoke": smoke.to_json() if smoke else None,
                          **({"run": run.to_json()} if run and run.mode != "shell" else {}),
                          "timings": res.timings}, indent=2))
    else:
        _print_result(res, smoke, run=run, cgroup=built.cgroup)
        print("timings: " + ", ".join(f"{k} {v:.1f}s" for k, v in res.timings.items()))


def _dockerfile_settings(dockerfile: Path) -> tuple[str, dict[str, str]]:
    from vm2c_tui.plan.runplan import undq

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
                labels[k] = undq(v)
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

    image.parse_reference(args.tag)
    require_root("convert", args)
    timings: dict[str, float] = {}
    t0 = time.monotonic()
    save = Path(args.save) if args.save else None
    if save:
        require_file_target(save, "--save")
    if args.workdir:
        require_dir(args.workdir, "--workdir")
    if args.compose:
        require_dir(args.compose, "--compose")
    with Conversion(sources(args), options(args), on_note=NoteLine()) as conv:
        insp = conv.inspect()
        conv.plan()
        timings["inspect"] = round(time.monotonic() - t0, 3)
        t1 = time.monotonic()
        prep = conv.prepare()
        timings["mount"] = round(time.monotonic() - t1, 3)
        run = conv.run_plan()  # a --run the guest cannot run is refused before the work
        for n in prep.notes:
            print(f"vm2c: {n}", file=sys.stderr)
        if not _daemon_up():
            return _save_without_daemon(conv, prep, args, save, timings)
        built = _convert_image(conv, prep, args, timings)
        root_id = conv.plans[0].fs_id if conv.plans else "/"
    if save:
        t5 = time.monotonic()
        image.save(args.tag, save)  # by tag, so `docker load` restores the name
        timings["save"] = round(time.monotonic() - t5, 3)
    timings["total"] = round(time.monotonic() - t0, 3)
    root = getattr(insp, "root_volume", None)
    found = root.os if root else getattr(insp, "os", None)  # a disk's root filesystem, or a remote machine's
    os_info = found.to_json() if found else None
    _write_run_files(Path(args.compose) if args.compose else None, args.tag, run, built.cgroup)
    _report(args, built, {"source": conv.source, "root": root_id, "os": os_info}, run)
    return 0 if built.smoke is None or built.smoke.ok else 3


def _convert_image(conv, prep, args, timings: dict[str, float]):
    """The image flow from a prepared conversion: the Dockerfile route from a written tar, the
    import route from tar's stream (the tree is unmounted while the daemon commits the layer)."""
    from vm2c_tui.image import flow

    recipe = flow.Recipe(args.tag, args.method, prep.shell, conv.labels(), smoke=not args.no_smoke,
                         run=conv.run_plan())
    flow.check(recipe, prep.expected_bytes)
    bar = ProgressLine()
    t2 = time.monotonic()
    if args.method == "dockerfile":
        res = conv.write_archive(conv.session.tempdir("build", base=args.workdir), bar)
        bar.done()
        timings["archive"] = round(time.monotonic() - t2, 3)
        _warn_dropped_xattrs(res.tar)
        return flow.make(recipe, tar=res.tar, on_log=_build_log(args.method), timings=timings)
    try:
        built = flow.make(recipe, stream=conv.stream(bar), after_body=conv.release, timings=timings,
                          timed_as="archive+import")
    except Vm2cError as err:
        raise conv.explain(err) from err
    bar.done()
    wh = prep.whiteout_note()
    if wh:
        print(f"vm2c: {wh}", file=sys.stderr)
    return built


def _save_without_daemon(conv, prep, args, save: Path | None, timings: dict[str, float]) -> int:
    """No daemon answers: with --save, the tar becomes a loadable image archive; else say why not."""
    from vm2c_tui.host.system import cgroup_version
    from vm2c_tui.image import daemon as image
    from vm2c_tui.image.loadable import write_image_archive

    if save is None:
        image.client(hint=image.SAVE_HINT)  # raises the clear "no daemon" error
    bar = ProgressLine()
    t2 = time.monotonic()
    res = conv.write_archive(conv.session.tempdir("tar", base=str(save.parent)), bar)
    bar.done()
    run = conv.run_plan()
    load = write_image_archive(res.tar, save, args.tag, prep.shell, conv.labels(), run)
    timings["archive"] = round(time.monotonic() - t2, 3)
    print(f"no Docker daemon answered: wrote {save} ({human(save.stat().st_size)}); load it with: {load}")
    if run.mode != "shell":  # not smoke-tested: there is no daemon to run it
        cgroup = cgroup_version()
        print(f"vm2c: --run {run.mode}: not smoke-tested (no daemon); the run flags assume this machine's "
              f"cgroup v{cgroup}", file=sys.stderr)
        _write_run_files(Path(args.compose) if args.compose else None, args.tag, run, cgroup)
    return 0


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
    s.add_argument("--compose", metavar="DIR", help="with --run system|service:NAME: write compose.yaml and "
                                                    "kubernetes.yaml for the image there")
    s.add_argument("--no-smoke", action="store_true", help=NO_SMOKE)
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=_cmd_convert)

    s = sub.add_parser("export", help="slim an image: export a container you stripped, re-import it")
    s.add_argument("container")
    s.add_argument("--tag", required=True, metavar="REPO:TAG")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=_cmd_export)
