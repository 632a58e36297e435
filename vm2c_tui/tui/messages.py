"""Messages workers post to screens (never touch widgets from a thread)."""

from __future__ import annotations

from textual.message import Message

from vm2c_tui.archive.gnutar import Progress


class StepFailed(Message):
    def __init__(self, step: str, error: str) -> None:
        super().__init__()
        self.step = step
        self.error = error


class ArchiveProgress(Message):
    """A flood of these collapses into the newest (Toolong's trick)."""

    def __init__(self, progress: Progress) -> None:
        super().__init__()
        self.progress = progress

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, ArchiveProgress)


class StatusNote(Message):
    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text


class BuildLog(Message):
    def __init__(self, line: str) -> None:
        super().__init__()
        self.line = line


class Estimated(Message):
    """The conversion is prepared (mounted or opened) and each preset's savings are known."""

    def __init__(self, estimates: dict[str, int]) -> None:
        super().__init__()
        self.estimates = estimates


class ServicesRead(Message):
    """What the prepared guest runs (inspect/services), or why it could not be read."""

    def __init__(self, services=None, error: str = "") -> None:
        super().__init__()
        self.services = services
        self.error = error


class ArchiveDone(Message):
    """The archive worker ended: RESULT on success, else ERROR (None: cancelled)."""

    def __init__(self, result=None, error: str | None = None) -> None:
        super().__init__()
        self.result = result
        self.error = error


class BuildDone(Message):
    """The image worker ended: the image and its smoke test, or ERROR (NO_DAEMON: offer to save)."""

    def __init__(self, built=None, error: str | None = None, no_daemon: bool = False, run=None) -> None:
        super().__init__()
        self.built = built
        self.run = run  # the run mode's plan it was built with
        self.error = error
        self.no_daemon = no_daemon


class Saved(Message):
    """The daemonless image archive is written (LINE says where and how to load it), or ERROR."""

    def __init__(self, line: str = "", error: str | None = None) -> None:
        super().__init__()
        self.line = line
        self.error = error
