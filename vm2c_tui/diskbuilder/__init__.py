"""Builds the demo disk and the test fixtures with real tools (sfdisk, mkfs, lvm, qemu-img).

Needs root (loop devices for LVM and xfs, chown/mknod for the guest tree).
Nothing is downloaded: the guest userland is Debian's busybox-static.
"""
