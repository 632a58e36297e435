"""A helper process that ends on its own is named when a read through it fails; one that vm2c
stopped is not (real processes: sh, sleep)."""

from __future__ import annotations

import time

from vm2c_tui.host.daemon import start_daemon
from vm2c_tui.host.session import Session


def test_a_helper_that_ended_first_is_named_and_one_stopped_is_not(tmp_path):
    with Session("test") as session:
        start_daemon(session, ["sh", "-c", "echo up >&2; sleep 0.3"], tmp_path / "short.log",
                     lambda: b"up" in (tmp_path / "short.log").read_bytes(), "the short one")
        start_daemon(session, ["sh", "-c", "echo up >&2; exec sleep 60"], tmp_path / "long.log",
                     lambda: b"up" in (tmp_path / "long.log").read_bytes(), "the long one")
        assert session.lost() == []
        for _ in range(100):
            if session.lost():
                break
            time.sleep(0.05)
        assert session.lost() == ["the short one"]
    assert session.lost() == ["the short one"]  # still said after the session stopped the other
