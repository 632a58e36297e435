"""A `docker load`-able image archive written without any daemon.

The layer is img.tar itself (uncompressed, so its sha256 is the diff id); a run mode adds its
run layer (runlayer.py) as a second one. The archive holds them, an image config (the mode's
ENV, CMD, ENTRYPOINT ... and the labels) and manifest.json.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import platform
import tarfile
import time
from pathlib import Path

from vm2c_tui.host.outfile import OutputFile
from vm2c_tui.image import runlayer
from vm2c_tui.image.daemon import parse_reference
from vm2c_tui.plan.runplan import RunPlan, shell_plan, undq

ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le", "s390x": "s390x"}


def _sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def image_config(lines: list[str], labels: dict[str, str]) -> dict:
    """The image config a daemon would make of LINES, a run plan's instructions (runplan.py
    writes them: ENV K=V or K=dq(V), USER, WORKDIR, EXPOSE, VOLUME/ENTRYPOINT/CMD as JSON,
    STOPSIGNAL), for the archive no daemon builds."""
    env: dict[str, str] = {}
    out: dict = {"Labels": labels}
    for line in lines:
        word, _, rest = line.partition(" ")
        if word == "ENV":
            key, _, value = rest.partition("=")
            env[key] = undq(value)
        elif word in ("USER", "WORKDIR", "STOPSIGNAL"):
            out[{"USER": "User", "WORKDIR": "WorkingDir", "STOPSIGNAL": "StopSignal"}[word]] = rest
        elif word == "EXPOSE":
            port, _, proto = rest.partition("/")
            out.setdefault("ExposedPorts", {})[f"{int(port)}/{proto or 'tcp'}"] = {}
        elif word == "VOLUME":
            out["Volumes"] = {path: {} for path in json.loads(rest)}
        elif word in ("ENTRYPOINT", "CMD"):
            out[word.title()] = json.loads(rest) or None  # Entrypoint, Cmd
        else:
            raise ValueError(f"{line!r}: not an instruction the run plan writes")
    return {"Env": [f"{k}={v}" for k, v in env.items()], **out}


def write_image_archive(layer_tar: Path, dest: Path, ref: str, shell: str, labels: dict[str, str],
                        run: RunPlan | None = None) -> str:
    """Write DEST; returns the command that loads it."""
    repo, tag = parse_reference(ref)
    run = run or shell_plan(shell)
    extra = runlayer.layer_bytes(run) if run.files else None
    diff_ids = [_sha256(layer_tar), *([hashlib.sha256(extra).hexdigest()] if extra else [])]
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    config = {
        "architecture": ARCH.get(platform.machine(), platform.machine()),
        "os": "linux",
        "created": created,
        "config": image_config(run.config, labels),
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{d}" for d in diff_ids]},
        "history": [{"created": created, "created_by": "vm2c (FROM scratch, ADD img.tar /)"},
                    *([{"created": created, "created_by": f"vm2c --run {run.mode} (ADD run.tar /)"}] if extra else [])],
    }
    config_bytes = json.dumps(config, sort_keys=True).encode()
    config_name = hashlib.sha256(config_bytes).hexdigest() + ".json"
    layers = [f"{d}/layer.tar" for d in diff_ids]
    manifest = [{"Config": config_name, "RepoTags": [f"{repo}:{tag}"], "Layers": layers}]
    with OutputFile(dest) as out, os.fdopen(os.dup(out.fd), "wb") as f:  # no symlink followed, 0600
        with tarfile.open(fileobj=f, mode="w", format=tarfile.PAX_FORMAT) as tf:
            for d in diff_ids:
                _add_bytes(tf, f"{d}/VERSION", b"1.0")
            tf.add(str(layer_tar), arcname=layers[0], recursive=False)
            if extra:
                _add_bytes(tf, layers[1], extra)
            _add_bytes(tf, config_name, config_bytes)
            _add_bytes(tf, "manifest.json", json.dumps(manifest).encode())
            _add_bytes(tf, "repositories", json.dumps({repo: {tag: diff_ids[-1]}}).encode())
        f.flush()
        out.commit()
    return f"docker load -i {dest}"


def _add_bytes(tf: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = int(time.time())
    info.mode = 0o644
    tf.addfile(info, io.BytesIO(data))
