"""Service layer: everything vm2c does, without any user interface.

No module here imports Textual; the CLI and the wizard are faces over it.
"""
