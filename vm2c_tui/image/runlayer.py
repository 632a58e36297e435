"""The run layer: the few files a run mode adds on top of the guest (masked units, a start
script, an empty machine-id) with the mode's config, built `FROM` the imported image by the
classic builder, the one route that takes every instruction (dockerd 20.10's import refuses
STOPSIGNAL). Its context is OUTDIR/run/ beside img.tar, so the operator can build it again:
`docker build --build-arg BASE=TAG -t TAG OUTDIR/run`. The tar has no directory entries: the
guest's own directories keep their owners and modes."""

from __future__ import annotations

import io
import json
import os
import stat
import tarfile
import time
from pathlib import Path

from vm2c_tui.errors import Vm2cError
from vm2c_tui.host.outfile import refuse_odd as refuse_odd_file
from vm2c_tui.host.outfile import write_new
from vm2c_tui.image import daemon
from vm2c_tui.plan.runplan import RunPlan

DIR, NAME, PLAN = "run", "run.tar", "run.json"


def layer_bytes(plan: RunPlan) -> bytes:
    buf, now = io.BytesIO(), int(time.time())
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for f in plan.files:
            info = tarfile.TarInfo(f.path.lstrip("/"))
            info.mtime, info.mode, info.uid, info.gid = now, f.mode, 0, 0
            if f.link:
                info.type, info.linkname = tarfile.SYMTYPE, f.link
                tar.addfile(info)
            else:
                data = f.text.encode()
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def refuse_odd(outdir: Path) -> None:
    """Before any work: OUTDIR/run is absent or a directory (never a link), its files regular."""
    try:
        st = os.lstat(outdir / DIR)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(st.st_mode):
        raise Vm2cError(f"{outdir / DIR}: exists and is not a directory (a link is never followed); remove it")
    for name in (NAME, "Dockerfile", PLAN):
        refuse_odd_file(outdir / DIR / name)


def clear(outdir: Path) -> None:
    """A shell-mode archive over an earlier run mode's: its run/ would make `vm2c build` use that mode."""
    refuse_odd(outdir)
    for name in (NAME, "Dockerfile", PLAN):
        (outdir / DIR / name).unlink(missing_ok=True)
    try:
        (outdir / DIR).rmdir()
    except OSError:  # absent, or holding the operator's own files
        pass


def write_context(context: Path, plan: RunPlan) -> Path:
    """CONTEXT (made 0700) holding run.tar, its Dockerfile and run.json, replacing earlier ones."""
    os.makedirs(context, mode=0o700, exist_ok=True)
    if plan.files:
        write_new(context / NAME, layer_bytes(plan))
    else:
        (context / NAME).unlink(missing_ok=True)
    text = "\n".join(["ARG BASE", "FROM ${BASE}", *([f"ADD {NAME} /"] if plan.files else []), *plan.config])
    write_new(context / "Dockerfile", (text + "\n").encode())
    write_new(context / PLAN, json.dumps(plan.to_json(), indent=2).encode())
    return context


def read_plan(outdir: Path) -> RunPlan | None:
    """The plan `vm2c archive --run` left in OUTDIR/run/ (None: shell mode)."""
    path = outdir / DIR / PLAN
    if not path.is_file():
        return None
    try:
        return RunPlan.from_json(json.loads(path.read_text()))
    except (ValueError, KeyError) as exc:
        raise Vm2cError(f"{path}: not a run plan vm2c wrote ({exc})") from None


def build(base: str, ref: str, context: Path, on_log=None) -> str:
    """REF: BASE (an image id) with the run layer of CONTEXT on top."""
    return daemon.build_dockerfile(context, ref, on_log=on_log, buildargs={"BASE": base})
