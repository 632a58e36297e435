"""What went wrong, in words a user can act on: one line each, never a traceback.

Each kind is a subclass, so a face decides by type (offer "save an archive instead" on
NoDaemon), never by matching the message; the exit status comes with the type.
"""


class Vm2cError(Exception):
    """Raised by the stages; faces print `message` on one line and exit with `exit_code`."""

    exit_code = 2

    def __init__(self, message: str, *, exit_code: int | None = None):
        super().__init__(message)
        self.message = message
        if exit_code is not None:
            self.exit_code = exit_code

    def __str__(self) -> str:
        return self.message

    def about(self, what) -> "Vm2cError":
        """The same error, its message prefixed with WHAT (the image it concerns), its type kept."""
        return type(self)(f"{what}: {self.message}", exit_code=self.exit_code)


class NoDaemon(Vm2cError):
    """No Docker daemon answers where DOCKER_HOST points."""


class NeedsRoot(Vm2cError):
    """The kernel route was asked for without root."""


class DamagedImage(Vm2cError):
    """A disk image whose header, block map or chain does not hold together."""
