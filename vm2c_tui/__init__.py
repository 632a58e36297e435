"""vm2c-tui: turn a VM disk image into a Docker image."""

__version__ = "0.1.0"
