"""What the wizard remembers between steps (no Textual, no disk)."""

from __future__ import annotations

from vm2c_tui.tui.state import WizardState


def test_a_new_root_forgets_the_choices_made_on_the_old_tree():
    state = WizardState()
    state.options.root, state.options.disabled = "p3", {"p1"}
    state.options.excludes.append("./srv")
    state.exclude_sizes["./srv"] = 4096
    state.choose_root("p2")
    assert (state.options.root, state.options.disabled, state.options.excludes, state.exclude_sizes) == \
        ("p2", set(), [], {})
    assert ("./srv",) not in state.options_key()  # the next conversion is prepared without the old rule
