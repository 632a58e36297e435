"""The two engines that read a disk: `kernel/` (a read-only raw view, loop devices and
read-only mounts; root) and `userspace/` (every table and filesystem read in Python; no root).
`engine` decides which one a conversion uses; `vfat` is how Linux shows a FAT filesystem, which
both must agree on.
"""
