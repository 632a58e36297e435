"""A `docker load`-able image archive written without any daemon.

The layer is img.tar itself (uncompressed, so its sha256 is the diff id);
the archive holds it, an image config (ENV, CMD, labels) and manifest.json.
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
from vm2c_tui.image.daemon import parse_reference
from vm2c_tui.image.dockerfile import DEFAULT_PATH

ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le", "s390x": "s390x"}


def _sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def write_image_archive(layer_tar: Path, dest: Path, ref: str, shell: str, labels: dict[str, str]) -> str:
    """Write DEST; returns the command that loads it."""
    repo, tag = parse_reference(ref)
    diff_id = _sha256(layer_tar)
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    config = {
        "architecture": ARCH.get(platform.machine(), platform.machine()),
        "os": "linux",
        "created": created,
        "config": {"Env": [f"PATH={DEFAULT_PATH}"], "Cmd": [shell], "Labels": labels},
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{diff_id}"]},
        "history": [{"created": created, "created_by": "vm2c (FROM scratch, ADD img.tar /)"}],
    }
    config_bytes = json.dumps(config, sort_keys=True).encode()
    config_name = hashlib.sha256(config_bytes).hexdigest() + ".json"
    layer_name = f"{diff_id}/layer.tar"
    manifest = [{"Config": config_name, "RepoTags": [f"{repo}:{tag}"], "Layers": [layer_name]}]
    with OutputFile(dest) as out, os.fdopen(os.dup(out.fd), "wb") as f:  # no symlink followed, 0600
        with tarfile.open(fileobj=f, mode="w", format=tarfile.PAX_FORMAT) as tf:
            _add_bytes(tf, f"{diff_id}/VERSION", b"1.0")
            tf.add(str(layer_tar), arcname=layer_name, recursive=False)
            _add_bytes(tf, config_name, config_bytes)
            _add_bytes(tf, "manifest.json", json.dumps(manifest).encode())
            _add_bytes(tf, "repositories", json.dumps({repo: {tag: diff_id}}).encode())
        f.flush()
        out.commit()
    return f"docker load -i {dest}"


def _add_bytes(tf: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = int(time.time())
    info.mode = 0o644
    tf.addfile(info, io.BytesIO(data))
