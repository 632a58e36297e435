"""A disk image on a machine over SSH read in place: qemu-nbd serves it read-only there, on a
unix socket in a directory made new for it (0700), ssh forwards that socket to one in our
private directory, and nbdfuse shows the export here as a raw file that every later step
reads like a local raw disk. Nothing of the image is copied and nothing is written there but
that directory, removed when ssh's stdin closes (vm2c done, failed or killed). Where qemu-nbd
is missing there, None: the caller copies the image instead (fetch.py).

qemu-nbd opens the image's backing files there, as the ssh user: files that user may read
anyway, read and never written (--read-only)."""

from __future__ import annotations

import json
import secrets
import shutil

from vm2c_tui.errors import Vm2cError
from vm2c_tui.host.daemon import fuse_mounted, nbdfuse_cmd, start_daemon
from vm2c_tui.source.ssh import Remote

# $1 format, $2 image, $3 the new directory: quoted words, none pasted into the script.
SERVE = r"""
set -eu
mkdir -m 0700 -- "$3"
trap 'kill "$(cat "$3/pid" 2>/dev/null)" 2>/dev/null || true; rm -rf -- "$3"' EXIT HUP TERM INT
qemu-nbd --read-only --persistent --fork --pid-file="$3/pid" --socket="$3/nbd.sock" --export-name=d \
  --format="$1" -- "$2"
echo vm2c-ready
cat >/dev/null || true
"""
PROBE = r"""command -v qemu-nbd >/dev/null 2>&1 || { echo none; exit 0; }
qemu-img info --output=json -- "$1" 2>&1 || echo vm2c-failed"""


def serve_cmd(fmt: str, path: str, remote_dir: str) -> list[str]:
    return ["sh", "-c", SERVE, "sh", fmt, path, remote_dir]


def remote_format(remote: Remote) -> str | None:
    """The image's format as qemu-img there reads it; None when there is no qemu-nbd there."""
    out = remote.run(["sh", "-c", PROBE, "sh", remote.path], timeout=60, what="qemu-img info").decode(
        "utf-8", "replace")
    if out.strip() == "none":
        return None
    if out.rstrip().endswith("vm2c-failed"):
        lines = [l for l in out.splitlines() if l.strip() and l.strip() != "vm2c-failed"]
        raise Vm2cError(f"{remote.url}: qemu-img there cannot read it: {lines[-1] if lines else 'no reason given'}")
    try:
        return str(json.loads(out)["format"])
    except (ValueError, KeyError):
        raise Vm2cError(f"{remote.url}: qemu-img there gave no format") from None


def open_view(remote: Remote, session, note=lambda msg: None) -> str | None:
    """A local raw file showing REMOTE's disk image, held by SESSION; None: no qemu-nbd there."""
    if not shutil.which("nbdfuse") or not shutil.which("ssh"):
        return None
    fmt = remote_format(remote)
    if fmt is None:
        note(f"{remote.host} has no qemu-nbd: the image is copied to be read")
        return None
    work = session.tempdir("sshview")
    local, view = work / "nbd.sock", work / "view"
    view.mkdir(mode=0o700)
    remote_dir = f"/tmp/vm2c-nbd-{secrets.token_hex(8)}"
    log = work / "ssh.log"
    serve = remote.argv(serve_cmd(fmt, remote.path, remote_dir), forward=(str(local), remote_dir + "/nbd.sock"))
    start_daemon(session, serve, log, lambda: b"vm2c-ready" in log.read_bytes(),
                 f"the ssh link to qemu-nbd on {remote.host}", hold_stdin=True, timeout=60)
    pidfile = work / "nbdfuse.pid"
    start_daemon(session, nbdfuse_cmd(str(view / "raw"), str(local), str(pidfile)), work / "nbdfuse.log",
                 lambda: pidfile.exists() and fuse_mounted(view), "nbdfuse (the remote disk)", fuse_file=view)
    note(f"read in place: qemu-nbd on {remote.host} serves the {fmt} image read-only through ssh")
    return str(view / "raw")
