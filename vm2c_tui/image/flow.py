"""One image flow for `vm2c build`, `vm2c convert` and the wizard: the reference, the daemon and
its room are checked before any work (`check`), then one route makes the image (a tar file
imported, tar's stream imported, or a Dockerfile built), then it is described and smoke-tested
(`make`)."""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from vm2c_tui.image import daemon, runlayer, runsmoke
from vm2c_tui.image.daemon import ImageResult, LogFn, Smoke
from vm2c_tui.image.dockerfile import changes
from vm2c_tui.image.upload import Body
from vm2c_tui.plan.runplan import RunPlan, shell_plan


@dataclass
class Recipe:
    """What the image is to be, whichever face asked for it."""

    tag: str
    method: str  # import | dockerfile
    shell: str
    labels: dict[str, str] = field(default_factory=dict)
    smoke: bool = True
    run: RunPlan | None = None  # how the image runs (None: shell)
    run_context: Path | None = None  # its layer's context already written (OUTDIR/run), else made here

    @property
    def plan(self) -> RunPlan:
        return self.run or shell_plan(self.shell)


@dataclass
class Built:
    result: ImageResult  # its timings: each step's seconds
    smoke: Smoke | None
    cgroup: str = "1"  # the daemon's cgroup version, asked once for a system mode: its docker run flags


def check(recipe: Recipe, image_bytes: int, hint: str = "") -> None:
    """Before any work: a valid reference, a daemon that answers (else NoDaemon, with HINT: what
    the face can offer instead), and room for the image on its data root."""
    daemon.parse_reference(recipe.tag)
    daemon.client(timeout=5, hint=hint).close()
    daemon.require_room(image_bytes, recipe.method, smoke=recipe.smoke)


def make(recipe: Recipe, *, tar: Path | None = None, stream: Body | None = None, after_body=None,
         on_log: LogFn | None = None, timings: dict[str, float] | None = None, timed_as: str = "build") -> Built:
    """The image from TAR (imported, or built from the Dockerfile beside it) or from tar's STREAM
    (imported while it is written; AFTER_BODY runs once the daemon has every byte)."""
    log = on_log or (lambda line: None)
    timings = {} if timings is None else timings
    start = time.monotonic()
    if recipe.method == "dockerfile":
        assert tar is not None, "the Dockerfile route builds from the directory holding img.tar"
        image_id = daemon.build_dockerfile(tar.parent, recipe.tag, on_log=log)  # its Dockerfile has the run layer
    elif stream is not None:
        image_id = daemon.import_stream(stream, recipe.tag, changes(recipe.shell, recipe.labels), after_body)
    else:
        log(f"docker import {tar} {recipe.tag}")
        image_id = daemon.import_file(tar, recipe.tag, changes(recipe.shell, recipe.labels))
    timings[timed_as] = round(time.monotonic() - start, 3)
    if recipe.method != "dockerfile" and recipe.plan.mode != "shell":
        start = time.monotonic()
        image_id = _run_layer(recipe, image_id, log)
        timings["run layer"] = round(time.monotonic() - start, 3)
    result = daemon.describe(image_id, recipe.method)
    cgroup = runsmoke.cgroup_version() if recipe.plan.system else "1"
    smoke = None
    if recipe.smoke:
        start = time.monotonic()
        smoke = _smoke(recipe, image_id, log, cgroup)
        timings["smoke"] = round(time.monotonic() - start, 3)
    result.timings = timings
    return Built(result, smoke, cgroup)


def _run_layer(recipe: Recipe, base: str, log: LogFn) -> str:
    log(f"run layer ({recipe.plan.mode}) on {base[:19]}")
    if recipe.run_context is not None:
        return runlayer.build(base, recipe.tag, recipe.run_context, log)
    with tempfile.TemporaryDirectory(prefix="vm2c-run-") as ctx:  # 0700
        return runlayer.build(base, recipe.tag, runlayer.write_context(Path(ctx), recipe.plan), log)


def _smoke(recipe: Recipe, image_id: str, log: LogFn, cgroup: str) -> Smoke:
    plan = recipe.plan
    if plan.mode == "shell":
        log(f"image {image_id}; smoke test: {recipe.shell} -c 'cat /etc/os-release'")
        return daemon.smoke_test(image_id, recipe.shell)
    log(f"image {image_id}; smoke test of --run {plan.mode}")
    return runsmoke.run(image_id, plan, cgroup)
