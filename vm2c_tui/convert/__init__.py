"""One conversion end to end: the ExitStack that owns every resource and the stages in order
(`conversion`), the same conversion as shell commands (`dryrun`), and what this machine offers a
conversion (`doctor`). The faces call in here; nothing here knows about them.
"""
