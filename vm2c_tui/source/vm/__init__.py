"""A VM as it comes: a definition (VirtualBox .vbox, VMware .vmx, OVF, libvirt domain XML), an
OVA holding one, or a folder holding one, resolved to the disks it would boot now (or at a
named snapshot) and its snapshot tree. Every file a definition names is checked to lie in the
VM's folder (or the OVA, unpacked into a private directory) before anything opens it; XML is
read with defusedxml. A plain disk image is a machine with one disk.
"""
