"""Images through a real Docker daemon (the docker SDK, so DOCKER_HOST is honoured)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path

from vm2c_tui.errors import NoDaemon, Vm2cError
from vm2c_tui.host.run import spawn
from vm2c_tui.image import upload
from vm2c_tui.image.upload import Body
from vm2c_tui.plan.runplan import config_lines

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
# a first component is a registry host only with a dot, a port, or "localhost" (as Docker decides)
_LABEL = r"[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?"
_HOST = rf"(?:(?:{_LABEL}(?:\.{_LABEL})+(?::[0-9]+)?|{_LABEL}:[0-9]+|localhost)/)"
REFERENCE = re.compile(rf"^(?P<name>{_HOST}?{_COMPONENT}(?:/{_COMPONENT})*)(?::(?P<tag>[\w][\w.-]{{0,127}}))?$")

LogFn = Callable[[str], None]
CONTEXT_MARGIN = 16 << 20  # the tar's headers and padding, and what else shares TMPDIR


def parse_reference(ref: str) -> tuple[str, str]:
    """('repo', 'tag') of REPO[:TAG], or a clear error."""
    m = REFERENCE.match(ref or "")
    if not m or len(m.group("name")) > 255:
        raise Vm2cError(f"invalid image reference '{ref}': use REPO[:TAG], lowercase letters, digits, "
                        "'.', '_', '-' and '/' in REPO (e.g. legacy/billing:2024)")
    return m.group("name"), m.group("tag") or "latest"


SAVE_HINT = "; or use --save PATH to write a loadable image archive without one"
# the SDK's nested exceptions end in the socket's own error; their text is all that is kept
_WHY = (("No such file or directory", "no socket there"),
        ("Permission denied", "permission denied on the socket: run as root or in the docker group"),
        ("Connection refused", "connection refused: nothing listens there"),
        ("timed out", "no answer in time"),
        ("Name or service not known", "unknown host"))


def client(timeout: int = 3600, hint: str = ""):
    """A client of the daemon DOCKER_HOST names, or a one-line error that says why not and,
    with HINT, what the command can do instead."""
    import docker

    try:
        c = docker.from_env(timeout=timeout)
        c.ping()
        return c
    except Exception as exc:  # the SDK raises several kinds: all mean no daemon
        text = str(exc)
        why = next((w for name, w in _WHY if name in text), _short(exc))
        raise NoDaemon(f"no Docker daemon answers at {_host()} ({why}); start one or point DOCKER_HOST at one"
                        f"{hint}") from None


def _host() -> str:
    return os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")


def _short(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:160]


@dataclass
class Smoke:
    ok: bool
    os_release: str = ""
    shell: str = ""
    error: str = ""
    mode: str = "shell"  # the run mode tested (runsmoke.py for the others)
    detail: list[str] = field(default_factory=list)  # what it found: systemd's state, the port's answer

    def to_json(self) -> dict:
        return {"ok": self.ok, "os_release": self.os_release, "shell": self.shell, "error": self.error or None,
                "mode": self.mode, "detail": self.detail}


@dataclass
class ImageResult:
    image_id: str
    tags: list[str]
    size: int
    layers: int
    method: str
    smoke: Smoke | None = None
    timings: dict[str, float] = field(default_factory=dict)


def _wrap(exc: Exception, what: str) -> Vm2cError:
    explanation = getattr(exc, "explanation", None)
    if explanation:  # the daemon answered, with a reason
        return Vm2cError(f"{what}: the Docker daemon reported: {_short(Exception(explanation))}")
    return Vm2cError(f"{what}: the Docker daemon failed or went away ({_short(exc)})")


@contextmanager
def daemon(what: str):
    """A client for one operation: SDK failures become one-line Vm2cErrors, the client is closed."""
    c = client()
    try:
        yield c
    except Vm2cError:
        raise
    except Exception as exc:
        raise _wrap(exc, what) from None
    finally:
        c.close()


def require_room(image_bytes: int, method: str = "import", smoke: bool = True) -> None:
    """Refuse, before any work, an image the daemon's data root cannot hold (dataroot.py).
    The Dockerfile route stores it three times: the build context, the ADD's container
    layer and the committed layer."""
    from vm2c_tui.image import dataroot

    with daemon("docker info") as c:
        dataroot.require_room(c, _host(), image_bytes * (3 if method == "dockerfile" else 1), smoke)


def _written_back(c):
    """A daemon on this machine has the layer written back while it is written (writeback.py).
    Not used for `docker build`: 3 pairs of a 1.3 GB Dockerfile build gave 44.5 s with it and
    44.4 s without."""
    from vm2c_tui.image import dataroot, writeback

    root = dataroot.local_data_root(c, _host())
    return writeback.ahead(root.local if root else None)


def import_stream(body: Body, ref: str, changes: list[str], after_body: Callable[[], None] | None = None) -> str:
    """`docker import -` of BODY: tar's pipe (spliced into the daemon's socket), a tar file
    (sent with sendfile) or chunks; see upload.py. AFTER_BODY runs once the daemon has
    every byte. A daemon on this machine gets its writeback started early (writeback.py).
    Returns the image id."""
    repo, tag = parse_reference(ref)
    with daemon("docker import") as c, _written_back(c):
        out = upload.post_import(c.api, repo, tag, changes, body, after_body)
        if out is None:  # TLS or ssh: through the SDK
            src = str(body) if isinstance(body, Path) else iter(body)
            out = c.api.import_image(src=src, repository=repo, tag=tag, changes=changes,
                                     stream_src=not isinstance(body, Path))
            if after_body:
                after_body()
    image_id = ""
    for line in str(out).splitlines():
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        if "error" in doc:
            raise Vm2cError(f"docker import: the Docker daemon reported: {doc['error']}")
        status = doc.get("status", "")
        if status.startswith("sha256:"):
            image_id = status
    if not image_id:
        raise Vm2cError("docker import: the daemon returned no image id")
    return image_id


def import_file(tar: Path, ref: str, changes: list[str]) -> str:
    """`docker import FILE`: the tar is never read into Python."""
    return import_stream(tar, ref, changes)


def _require_context_room(context: Path) -> None:
    """With a .dockerignore the docker SDK builds the context itself, packing it into a
    temporary file first (docker/utils/build.py): an img.tar of 10 GB needs 10 GB in TMPDIR,
    often a small tmpfs, where running out midway would read as the daemon's failure."""
    from vm2c_tui.host.system import free_space  # psutil: only for this rare route

    size = sum(p.lstat().st_size for p in context.rglob("*") if p.is_file() and not p.is_symlink())
    tmp = tempfile.gettempdir()
    free = free_space(tmp)
    if free < size + CONTEXT_MARGIN:
        raise Vm2cError(f"docker build: the docker SDK first copies the build context ({size >> 20} MiB) into a "
                        f"temporary file in {tmp}, which has {free >> 20} MiB free; point TMPDIR at a place with "
                        "room, remove the .dockerignore, or use --method import (no copy)")


def _streamed_context(context: Path) -> Iterator[bytes]:
    """CONTEXT as a tar straight from GNU tar's pipe, sent as it is made (no temporary copy)."""
    names = sorted(os.listdir(context))  # members named as `docker build` names them: no "./"
    tar = spawn(["tar", "-C", str(context), "-cf", "-", "--", *names], stdout=subprocess.PIPE)
    try:
        while chunk := tar.stdout.read(1 << 20):
            yield chunk
        if tar.wait() != 0:
            raise Vm2cError(f"docker build: tar of the build context {context} failed (exit {tar.returncode})")
    finally:
        if tar.poll() is None:
            tar.kill()
            tar.wait()
        tar.stdout.close()


def build_dockerfile(context: Path, ref: str, on_log: LogFn | None = None, buildargs: dict | None = None) -> str:
    """The classic recipe: `docker build` of FROM scratch + ADD img.tar /."""
    parse_reference(ref)
    if (context / ".dockerignore").exists():  # its patterns are the SDK's to apply
        _require_context_room(context)
        chunks, source = None, {"path": str(context)}
    else:
        chunks = _streamed_context(context)
        source = {"fileobj": chunks, "custom_context": True}
    image_id = ""
    with daemon("docker build") as c, closing(chunks) if chunks else nullcontext():  # closing stops tar
        for doc in c.api.build(**source, tag=ref, rm=True, forcerm=True, decode=True, buildargs=buildargs):
            if "error" in doc:
                raise Vm2cError(f"docker build: {doc['error'].strip()}")
            line = doc.get("stream", "")
            if line and on_log:
                for part in line.splitlines():
                    if part.strip():
                        on_log(part)
            aux = doc.get("aux", {})
            if "ID" in aux:
                image_id = aux["ID"]
            m = re.match(r"Successfully built ([0-9a-f]+)", line)
            if m and not image_id:
                image_id = m.group(1)
    if not image_id:
        raise Vm2cError("docker build finished without an image id")
    return image_id


def describe(image_id: str, method: str) -> ImageResult:
    with daemon("docker inspect") as c:
        img = c.images.get(image_id)
        return ImageResult(img.id, list(img.tags), int(img.attrs.get("Size", 0)),
                           len(img.attrs.get("RootFS", {}).get("Layers", [])), method)


def smoke_test(image_id: str, shell: str) -> Smoke:
    """Run the image with no network: the CMD's shell must start and read /etc/os-release."""
    c = client()
    try:
        out = c.containers.run(image_id, ["-c", "cat /etc/os-release"], entrypoint=[shell], network_mode="none",
                               remove=True, stdout=True, stderr=True)
        return Smoke(True, out.decode("utf-8", "replace")[:4000], shell)
    except Exception as exc:  # reported plainly, the image is kept
        return Smoke(False, "", shell, _short(exc))
    finally:
        c.close()


def save(image: str, dest: Path) -> int:
    """`docker save` to DEST (which also proves the daemon can verify every layer)."""
    from vm2c_tui.host.outfile import OutputFile

    with daemon("docker save") as c, OutputFile(dest) as out:  # no symlink followed, 0600
        with os.fdopen(os.dup(out.fd), "wb") as f:
            for chunk in c.images.get(image).save(chunk_size=1 << 20, named=True):
                f.write(chunk)
        size = out.size()
        out.commit()
    return size


def export_container(container: str, ref: str) -> tuple[ImageResult, int]:
    """The slimming loop: `docker export` a container and import it as one layer, keeping its
    image's config (Env, Cmd, Entrypoint, User, WorkingDir, ports, volumes, labels, stop signal)."""
    parse_reference(ref)
    with daemon("docker export") as c:
        try:
            ctr = c.containers.get(container)
        except Exception:
            raise Vm2cError(f"no container '{container}' on {_host()}") from None
        img = c.images.get(ctr.image.id)
        before = int(img.attrs.get("Size", 0))
        cfg = img.attrs.get("Config", {})  # the image's, not the command the container ran
        lines = config_lines(cfg)
        changes = [line for line in lines if not line.startswith("STOPSIGNAL ")]  # import refuses it
        later = [line for line in lines if line not in changes]
        stream = ctr.export(chunk_size=1 << 20)
        image_id = import_stream(stream, ref, changes)
    if later:  # a system image's SIGRTMIN+3: set by the builder, no layer added
        with tempfile.TemporaryDirectory(prefix="vm2c-export-") as context:  # 0700
            Path(context, "Dockerfile").write_text("\n".join([f"FROM {image_id}", *later]) + "\n")
            image_id = build_dockerfile(Path(context), ref)
    return describe(image_id, "export"), before
