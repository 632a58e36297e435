"""What goes where and what is left out: the mount plan with its placement rules (`mounts`),
the exclude presets and their savings (`presets`), and GNU tar's exclude rules applied in Python
(`excludes`). Pure decisions: nothing here attaches, mounts or writes.
"""
