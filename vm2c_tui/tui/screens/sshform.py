""""A machine over SSH": host, user and port, made into the ssh:// address the Source step checks."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from vm2c_tui.errors import Vm2cError
from vm2c_tui.source.ssh import Remote


class SshForm(ModalScreen[str | None]):
    """Dismissed with the address (ssh://user@host:port), or None on Esc."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def compose(self) -> ComposeResult:
        with Vertical(id="ssh-dialog"):
            yield Static("A machine over SSH: your ssh config, keys, agent and known_hosts are used; tar runs "
                         "there and nothing is written on it.")
            for label, ident, hint in (("Host", "ssh-host", "a name from ~/.ssh/config, or an address"),
                                       ("User", "ssh-user", "default: your ssh config's, or yours"),
                                       ("Port", "ssh-port", "default: 22 or your ssh config's")):
                with Horizontal(classes="form-row"):
                    yield Label(f"{label:<5}")
                    yield Input(placeholder=hint, id=ident)
            yield Static(id="ssh-error")
            with Horizontal(classes="buttons"):
                yield Button("Connect", id="connect", variant="primary")
                yield Button("Cancel", id="cancel")

    def address(self) -> str:
        host, user, port = (self.query_one(f"#ssh-{k}", Input).value.strip() for k in ("host", "user", "port"))
        if not host:
            raise Vm2cError("a host is needed")
        if port and not port.isdigit():
            raise Vm2cError(f"port {port!r}: a number")
        url = f"ssh://{user + '@' if user else ''}{f'[{host}]' if ':' in host else host}{':' + port if port else ''}"
        return Remote.parse(url).url  # the same checks as a typed address

    @on(Input.Submitted)
    @on(Button.Pressed, "#connect")
    def connect(self) -> None:
        try:
            self.dismiss(self.address())
        except Vm2cError as exc:
            self.query_one("#ssh-error", Static).update(exc.message)

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)
