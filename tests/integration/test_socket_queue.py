"""The daemon's socket holds megabytes unread, as root (SO_SNDBUFFORCE): what the upload's queue is sized against."""

from __future__ import annotations

import socket

from vm2c_tui.image import upload


def _queued_until_full(sock: socket.socket) -> int:
    sock.setblocking(False)
    queued = 0
    try:
        while True:
            queued += sock.send(bytes(1 << 16))
    except BlockingIOError:
        return queued


def test_the_daemons_socket_holds_megabytes_unread(tmp_path, monkeypatch):
    """upload.queue_room: vm2c can run QUEUE bytes ahead of the daemon before it must wait to
    be woken; with the kernel's default (VM2C_SOCKET_QUEUE=0) a unix socket holds < 1 MiB."""
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(str(tmp_path / "daemon.sock"))
        listener.listen()
        queued = {}
        for setting in ("", "0"):
            if setting:
                monkeypatch.setenv("VM2C_SOCKET_QUEUE", setting)
            else:
                monkeypatch.delenv("VM2C_SOCKET_QUEUE", raising=False)
            with socket.socket(socket.AF_UNIX) as sock:
                sock.connect(str(tmp_path / "daemon.sock"))
                upload.queue_room(sock)
                with listener.accept()[0]:  # a daemon that does not read
                    queued[setting] = _queued_until_full(sock)
    assert queued[""] >= upload.QUEUE
    assert queued["0"] < 1 << 20
