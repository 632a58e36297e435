"""What is on a disk, whichever engine reads it: the typed result (`model`), partition tables
(`table` with sfdisk, `partitions` in Python), signatures (`probe` with blkid, `signatures` in
Python), LVM metadata (`lvm`), the walk that turns them into an Inspection (`scan`), what a guest
filesystem says about itself (`guestinfo`, `guestpath`), fstab lines resolved to filesystems
(`resolve`) and the root search (`root`). The engines in `read/` supply the bytes.
"""
