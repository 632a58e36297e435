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
