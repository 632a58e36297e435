"""The kernel route: a read-only raw view of the image (`attach`), loop devices and
read-only mounts that never replay a journal (`mount`), an LV in pieces copied joined (`joincopy`),
ext read without root (`debugfs`), inspection through all of these (`inspect`) and the guest tree
assembled from the mount plan (`assemble`).
"""
