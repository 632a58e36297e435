"""The machine vm2c runs on: the one place a command runs (`run`), the sandbox for tools that
open images (`confine`), every acquired resource and its release (`session`), facts about this
machine (`system`, `pagecache`), files vm2c writes as root (`outfile`, `outdir`) and the
experiment switches (`tuning`). Every other stage stands on this one; it imports none of them.
"""
