"""What each step does and what vm2c does behind it, for the help screen (? or F1): written
for an operator on their own and for a trainer showing the process to a room."""

from __future__ import annotations

KEYS_EVERYWHERE = ("ctrl+n  next: the step's main action (dimmed in the footer until it can run)\n"
                   "c  commands panel: the shell commands equal to what the wizard does\n"
                   "esc  back one step, keeping your choices\n"
                   "q  quit (ctrl+q in a text field): everything attached or mounted is released\n"
                   "ctrl+p  command palette: this step's actions, themes\n"
                   "? or F1  this help")

HELP = {
    "SourceScreen": (
        "1 Source: which disk to convert",
        "Pick a disk image (raw, qcow2, vdi, vmdk, vhd, vhdx), a partition dump, a VM (a VirtualBox .vbox, a "
        "VMware .vmx, an OVF or OVA, a libvirt domain XML, or the folder holding one), or this running machine. "
        "The browser shows only files that look like disks or VM definitions by their content, never their name. "
        "A VM is read as it would boot now: its newest snapshot image, all its disks; its snapshot tree is shown.",
        "vm2c identifies the format from its header and asks qemu-img for its size and backing chain; qemu "
        "runs in a sandbox that sees only the image's directory. A red line means a running process (a VM) "
        "holds the file open: shut the VM down first, or the copy may be inconsistent; or that newer snapshot "
        "images depend on this base image, which holds the machine as it was at its first snapshot: pick the "
        "VM's definition instead. The source is only ever read.",
        "enter  check the typed path and, if it is a disk, go on\ntab  move between the browser, the path and the buttons"),
    "PartitionsScreen": (
        "2 Partitions: where the root filesystem is",
        "The disk's partition table, cfdisk-style, with each LVM volume group's logical volumes under their "
        "PV. The root vm2c found is in green; the preview shows the highlighted filesystem's OS, top-level "
        "directories and fstab.",
        "vm2c reads the table with sfdisk and the signatures with blkid, parses LVM metadata itself (no "
        "device-mapper, no vgchange: the host's LVM is never touched) and looks inside each filesystem "
        "read-only for /etc/os-release and /etc/fstab. This is the step the classic recipe does with cfdisk "
        "and guesswork.",
        "up/down  highlight a filesystem\nr or enter  use the highlighted filesystem as the root"),
    "MountScreen": (
        "3 Mount: what goes into the image",
        "The root with the mounts its fstab lists on this disk (each can be switched off), how the disk is "
        "read, the preset (what a container does not need: kernel, /boot, caches ...) with what each leaves "
        "out, sanitising (machine-id, SSH host keys), and where img.tar goes.",
        "Each filesystem becomes a read-only loop device at its byte offset, mounted ro,nosuid,nodev,noexec "
        "without replaying a journal; the fstab mounts are placed under the root as the guest would see "
        "them. Without root, or when you switch to it, the user-space engine reads the same tree with no "
        "mounts at all.",
        "space  toggle the focused switch\ntab  next control\ne  explore sizes: leave big directories out"),
    "ExploreScreen": (
        "3 Mount: exploring sizes",
        "The assembled tree's entries, biggest first, as ncdu shows them: go into a directory to see what "
        "fills it, and leave out what the container does not need before archiving rather than after.",
        "Sizes are the blocks each entry holds, read from the read-only mounts (or the user-space readers). "
        "Leaving an entry out adds an --exclude rule anchored at the tree's root (./srv), which the commands "
        "panel shows and tar honours; the Mount step says what your rules leave out.",
        "enter  into a directory\nbackspace  up\nx  leave out / keep\nesc  back to the Mount step"),
    "ArchiveScreen": (
        "4 Archive: the tree into img.tar",
        "GNU tar writes the assembled tree to img.tar, with progress: bytes of the expected total, files, "
        "rate, time left, the current path. While the tree is mounted, vm2c reads what the guest runs (its init, "
        "enabled services and their ports, data directories): the panel below, the Build step's run modes.",
        "tar keeps owners, modes, xattrs and capabilities, hard links, devices and odd names "
        "(--format=pax --numeric-owner --xattrs); a read-ahead keeps the disk busy ahead of it. The file is "
        "written as img.tar.partial (0600, never through a symlink) and renamed when complete. Cancel stops "
        "tar, removes the partial file and releases every mount.",
        "tab, then enter on Cancel  stop the archive (it asks first)"),
    "BuildScreen": (
        "5 Build: img.tar into a Docker image",
        "Import (one layer, every xattr kept) or the classic Dockerfile route (FROM scratch, ADD img.tar /), "
        "the tag, and how it runs: shell (its shell reads /etc/os-release in the smoke test), system (the "
        "guest's init as PID 1, booted until systemd says running) or service:NAME (one service as the "
        "process, reached on its port inside the container). With no Docker daemon, save a docker-load-able "
        "archive instead (shell mode).",
        "vm2c checks the daemon's data root has room before sending a byte, labels the image with where it "
        "came from, and prints what to run next. A run mode adds a small layer (masked units, a start script; "
        "its context is img.tar's run/ folder) and writes compose.yaml and kubernetes.yaml beside img.tar. "
        "To slim it: run it, delete what it does not need, and "
        "`vm2c export` the container.",
        "tab  next field\nenter  press the focused button"),
}


def help_for(screen_name: str) -> tuple[str, str]:
    """(title, body) for the step named SCREEN_NAME."""
    title, does, behind, keys = HELP.get(screen_name, ("vm2c", "", "", ""))
    parts = [does, "What vm2c does behind it\n" + behind if behind else "", "Keys on this step\n" + keys if keys else "",
             "Keys everywhere\n" + KEYS_EVERYWHERE]
    return title, "\n\n".join(p for p in parts if p)
