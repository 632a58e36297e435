"""The headless face: `vm2c inspect|archive|build|convert|export|doctor|cleanup|tui`. Argument
parsing and printing only; the work is in the stages.
"""
