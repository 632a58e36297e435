"""The one error type: a message a user can act on, and the exit status."""


class Vm2cError(Exception):
    """Raised by services; faces print `message` on one line, no traceback."""

    def __init__(self, message: str, *, exit_code: int = 2):
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code

    def __str__(self) -> str:
        return self.message
