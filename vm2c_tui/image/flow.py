"""One image flow for `vm2c build`, `vm2c convert` and the wizard: the reference, the daemon and
its room are checked before any work (`check`), then one route makes the image (a tar file
imported, tar's stream imported, or a Dockerfile built), then it is described and smoke-tested
(`make`)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from vm2c_tui.image import daemon
from vm2c_tui.image.daemon import ImageResult, LogFn, Smoke
from vm2c_tui.image.dockerfile import changes
from vm2c_tui.image.upload import Body


@dataclass
class Recipe:
    """What the image is to be, whichever face asked for it."""

    tag: str
    method: str  # import | dockerfile
    shell: str
    labels: dict[str, str] = field(default_factory=dict)
    smoke: bool = True


@dataclass
class Built:
    result: ImageResult  # its timings: each step's seconds
    smoke: Smoke | None


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
        image_id = daemon.build_dockerfile(tar.parent, recipe.tag, on_log=log)
    elif stream is not None:
        image_id = daemon.import_stream(stream, recipe.tag, changes(recipe.shell, recipe.labels), after_body)
    else:
        log(f"docker import {tar} {recipe.tag}")
        image_id = daemon.import_file(tar, recipe.tag, changes(recipe.shell, recipe.labels))
    timings[timed_as] = round(time.monotonic() - start, 3)
    result = daemon.describe(image_id, recipe.method)
    smoke = None
    if recipe.smoke:
        log(f"image {image_id}; smoke test: {recipe.shell} -c 'cat /etc/os-release'")
        start = time.monotonic()
        smoke = daemon.smoke_test(image_id, recipe.shell)
        timings["smoke"] = round(time.monotonic() - start, 3)
    result.timings = timings
    return Built(result, smoke)
