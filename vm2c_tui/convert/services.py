"""`vm2c services SOURCE`: the assembled guest (both engines) read for what it runs (issue 24)."""

from __future__ import annotations

from vm2c_tui.inspect.services import GuestServices, read_services


def guest_services(conv) -> GuestServices:
    """CONV: an entered Conversion; its tree is prepared (mounted read-only, or opened)."""
    tree = (conv.prepared or conv.prepare()).tree  # inspects and plans first
    return read_services(tree.guest(), lambda path: sum(size for _, size, _ in tree.sizes(path)))
