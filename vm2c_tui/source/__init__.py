"""What a file is and what it names: the container format by its bytes (`magic`), the
checked identification with qemu-img or without it (`identify`, `noqemu`), a format's variant
(`subformats`), the files an image names for its reader (`imagerefs`), and a disk image as
random-access bytes for the user-space reader (`diskimage`, `vdi`).
"""
