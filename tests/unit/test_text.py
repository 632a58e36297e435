"""Plain-text rendering shared by the faces: control characters made visible."""

from __future__ import annotations


def test_safe_makes_control_characters_visible():
    from vm2c_tui.text import safe

    assert safe("\x1b[31mred\nline") == "\\x1b[31mred\\nline"
