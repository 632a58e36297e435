"""`docker import`'s request body written straight into the daemon's socket.

Through the SDK (requests, http.client) each MiB of a streamed tar is read into a new bytes
object, copied again behind its chunk header, then copied into the socket. perf, cold 1.3 GB
convert: vm2c's own process took 5.8 CPU-s that way and 3.1 with the body spliced (the
machine ~28), on two cores the daemon needs. Here tar's pipe is spliced into the socket (the
kernel hands the pages over), a file goes out with sendfile, other chunks as they are. Only
plain sockets take this way (unix://, tcp:// without TLS); for TLS or ssh (or VM2C_UPLOAD=sdk)
`post_import` returns None and the SDK sends the body. The SDK stays the client for
everything else, and gives the address and the API version.
"""

from __future__ import annotations

import array
import fcntl
import http.client
import json
import logging
import os
import select
import socket
import struct
import termios
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Protocol, runtime_checkable
from urllib.parse import urlencode, urlsplit

from vm2c_tui.errors import Vm2cError
from vm2c_tui.host import tuning

log = logging.getLogger("vm2c.upload")
TIMEOUT = 3600  # as the SDK's client: a daemon silent this long is taken as gone
QUEUE = 8 << 20  # bytes the daemon's unix socket may hold unread (queue_room says why)
_SO_SNDBUFFORCE = 32  # Linux; the socket module does not name it


@runtime_checkable
class PipeSource(Protocol):
    """A pipe a consumer drains itself (archive.TarPipe): it reports each move, and calls
    finish() once the pipe is empty and closed, before the body is ended."""

    def fileno(self) -> int: ...

    def moved(self, n: int) -> None: ...

    def finish(self) -> None: ...


Body = PipeSource | Path | Iterable[bytes]


def post_import(api, repo: str, tag: str, changes: list[str], body: Body,
                after_body: Callable[[], None] | None = None) -> str | None:
    """POST /images/create?fromSrc=- with BODY; the daemon's answer (JSON lines), or None
    when the SDK's client does not talk over a plain socket. AFTER_BODY runs once the body
    is sent, while the daemon commits the layer (~0.4 s for 1.3 GB: the unmount fits there)."""
    sock = None if tuning.upload_via_sdk() else _connect(api)
    if sock is None:
        return None
    params = [("fromSrc", "-"), ("repo", repo), ("tag", tag)] + [("changes", c) for c in changes]
    head = [f"POST /v{api.api_version}/images/create?{urlencode(params)} HTTP/1.1", "Host: docker",
            "Content-Type: application/tar", "Connection: close"]
    size = body.stat().st_size if isinstance(body, Path) else None
    head.append(f"Content-Length: {size}" if size is not None else "Transfer-Encoding: chunked")
    with sock:
        try:
            sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
            if isinstance(body, Path):
                with open(body, "rb") as f:
                    sock.sendfile(f)
            elif isinstance(body, PipeSource):
                _splice_chunks(sock, body)
            else:
                _send_chunks(sock, body)
        except (BrokenPipeError, ConnectionResetError):
            answer = _answer(sock)  # a daemon that refused the request early said why before closing
            if answer is None:
                raise
            return answer
        log.debug("body sent; waiting for the daemon's answer")
        if after_body:
            after_body()
        answer = _answer(sock)
        log.debug("answered")
        if answer is None:
            raise ConnectionResetError("the daemon closed the connection without an answer")
        return answer


def _connect(api) -> socket.socket | None:
    base = api.base_url
    if base.startswith("http://"):  # tcp:// without TLS
        u = urlsplit(base)
        sock = socket.create_connection((u.hostname, u.port or 80), timeout=30)
    elif base == "http+docker://localhost":  # unix://; ssh:// is http+docker://ssh
        path = getattr(api.get_adapter(base), "socket_path", None)
        if not path:
            return None
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(30)
        try:
            sock.connect(path)
        except OSError:
            sock.close()
            raise
        queue_room(sock)
    else:
        return None
    # blocking for splice and sendfile (a Python timeout makes the fd non-blocking); the
    # kernel's own timeouts stand in for it
    sock.settimeout(None)
    tv = struct.pack("ll", TIMEOUT, 0)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, tv)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, tv)
    return sock


def queue_room(sock: socket.socket) -> None:
    """Let QUEUE bytes wait in a unix socket for the daemon to read them (VM2C_SOCKET_QUEUE=0:
    the kernel's default, ~200 KiB). With the default, every read the daemon makes wakes vm2c
    to send the next piece, and on two cores those wake-ups come out of the daemon's time."""
    if not tuning.socket_queue():
        return
    try:  # as root, past net.core.wmem_max
        sock.setsockopt(socket.SOL_SOCKET, _SO_SNDBUFFORCE, QUEUE)
    except PermissionError:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, QUEUE)


def _splice_chunks(sock: socket.socket, src: PipeSource) -> None:
    """One HTTP chunk per wake-up, as large as the pipe holds then; the bytes never enter Python."""
    fd, out = src.fileno(), sock.fileno()
    ready = select.poll()
    ready.register(fd, select.POLLIN)
    avail = array.array("i", [0])
    sep = b""
    while True:
        ready.poll()
        fcntl.ioctl(fd, termios.FIONREAD, avail)
        n = avail[0]
        if not n:  # the writer closed its end and the pipe is empty
            break
        sock.sendall(sep + b"%x\r\n" % n)
        while n:
            moved = os.splice(fd, out, n)
            if not moved:
                raise Vm2cError("the tar stream ended inside a chunk")
            n -= moved
            src.moved(moved)
        sep = b"\r\n"
    src.finish()  # a failed tar raises here: the body is never ended, the daemon discards it
    sock.sendall(sep + b"0\r\n\r\n")


def _send_chunks(sock: socket.socket, chunks: Iterable[bytes]) -> None:
    sep = b""
    for chunk in chunks:
        if chunk:
            sock.sendall(sep + b"%x\r\n" % len(chunk))
            sock.sendall(chunk)
            sep = b"\r\n"
    sock.sendall(sep + b"0\r\n\r\n")


def _answer(sock: socket.socket) -> str | None:
    """The daemon's response body; an HTTP error status becomes a Vm2cError with its message."""
    resp = http.client.HTTPResponse(sock)
    try:
        resp.begin()
        data = resp.read()
    except (http.client.HTTPException, OSError):
        return None
    text = data.decode("utf-8", "replace")
    if resp.status >= 400:
        try:
            message = json.loads(text).get("message", "")
        except (ValueError, AttributeError):
            message = ""
        raise Vm2cError(f"docker import: the Docker daemon reported: {(message or text or resp.reason).strip()[:160]}")
    return text
