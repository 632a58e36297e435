"""Sub-commands that move data: archive, build, convert, export (added as they land)."""


def add_parsers(sub) -> None:
    pass
