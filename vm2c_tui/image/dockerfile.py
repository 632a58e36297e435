"""The Dockerfile of the classic recipe, written next to img.tar."""

from __future__ import annotations

import json

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def pick_shell(shells: list[str]) -> str:
    for s in ("/bin/bash", "/usr/bin/bash", "/bin/sh", "/usr/bin/sh", "/bin/ash"):
        if s in shells:
            return s
    return shells[0] if shells else "/bin/sh"


def dockerfile_text(shell: str, labels: dict[str, str], tar_name: str = "img.tar") -> str:
    lines = ["FROM scratch", f"ADD {tar_name} /", f"ENV PATH={DEFAULT_PATH}"]
    for k, v in labels.items():
        lines.append(f"LABEL {k}={json.dumps(v)}")
    lines.append(f"CMD {json.dumps([shell])}")
    return "\n".join(lines) + "\n"


def changes(shell: str, labels: dict[str, str]) -> list[str]:
    """The same settings as `docker import --change` lines."""
    out = [f"ENV PATH={DEFAULT_PATH}", f"CMD {json.dumps([shell])}"]
    out += [f"LABEL {k}={json.dumps(v)}" for k, v in labels.items()]
    return out


def image_commands(outdir: str, tag: str, method: str, shell: str, labels: dict[str, str]) -> list[str]:
    """The build step as shell lines, for the commands panel."""
    from vm2c_tui.host.run import shell_line

    if method == "dockerfile":
        lines = [shell_line(["docker", "build", "-t", tag, outdir])]
    else:
        cmd = ["docker", "import"]
        for c in changes(shell, labels):
            cmd += ["--change", c]
        lines = [shell_line([*cmd, f"{outdir}/img.tar", tag])]
    lines.append(shell_line(["docker", "run", "--rm", "--network", "none", "--entrypoint", shell, tag, "-c",
                             "cat /etc/os-release"]))
    lines.append(shell_line(["docker", "run", "-it", "--rm", tag, shell]))
    return lines
