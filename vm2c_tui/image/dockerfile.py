"""The Dockerfile of the classic recipe, written next to img.tar, and the same settings as
`docker import --change` lines; a run mode other than shell adds its layer and config."""

from __future__ import annotations

from vm2c_tui.plan.runplan import DEFAULT_PATH, RunPlan, dq, shell_plan

__all__ = ["DEFAULT_PATH", "changes", "dockerfile_text", "image_commands", "pick_shell"]


def pick_shell(shells: list[str]) -> str:
    for s in ("/bin/bash", "/usr/bin/bash", "/bin/sh", "/usr/bin/sh", "/bin/ash"):
        if s in shells:
            return s
    return shells[0] if shells else "/bin/sh"


def dockerfile_text(shell: str, labels: dict[str, str], tar_name: str = "img.tar", run: RunPlan | None = None) -> str:
    from vm2c_tui.image.runlayer import DIR, NAME

    plan = run or shell_plan(shell)
    lines = ["FROM scratch", f"ADD {tar_name} /", *([f"ADD {DIR}/{NAME} /"] if plan.files else [])]
    lines += [c for c in plan.config if c.startswith("ENV ")]  # the classic order: ENV, LABELs, the rest
    lines += [f"LABEL {k}={dq(v)}" for k, v in labels.items()]
    lines += [c for c in plan.config if not c.startswith("ENV ")]
    return "\n".join(lines) + "\n"


def changes(shell: str, labels: dict[str, str]) -> list[str]:
    """The shell mode's settings as `docker import --change` lines (a run mode's are built on top)."""
    out = list(shell_plan(shell).config)
    out += [f"LABEL {k}={dq(v)}" for k, v in labels.items()]
    return out


def image_commands(outdir: str, tag: str, method: str, shell: str, labels: dict[str, str],
                   run: RunPlan | None = None, cgroup: str = "1") -> list[str]:
    """The build step as shell lines, for the commands panel and --dry-run."""
    from vm2c_tui.host.run import shell_line

    plan = run or shell_plan(shell)
    if method == "dockerfile":
        lines = [shell_line(["docker", "build", "-t", tag, outdir])]
    else:
        cmd = ["docker", "import"]
        for c in changes(shell, labels):
            cmd += ["--change", c]
        lines = [shell_line([*cmd, f"{outdir}/img.tar", tag])]
        if plan.mode != "shell":  # the run layer (runlayer.py) on top of the import
            lines.append(shell_line(["docker", "build", "--build-arg", f"BASE={tag}", "-t", tag, f"{outdir}/run"]))
    lines += run_commands(tag, plan, shell, cgroup)
    return lines


def run_commands(tag: str, plan: RunPlan, shell: str, cgroup: str = "1") -> list[str]:
    """The smoke test's and the operator's `docker run` lines for PLAN's mode."""
    from vm2c_tui.host.run import shell_line
    from vm2c_tui.image.compose import name_of, published, volume_of

    if plan.mode == "shell":
        return [shell_line(["docker", "run", "--rm", "--network", "none", "--entrypoint", shell, tag, "-c",
                            "cat /etc/os-release"]),
                shell_line(["docker", "run", "-it", "--rm", tag, shell])]
    ports = [a for h, p in published(plan) for a in ("-p", f"{h}:{p}")]
    vols = [a for v in plan.volumes for a in ("-v", f"{volume_of(tag, v)}:{v}")]
    name = name_of(tag)
    line = shell_line(["docker", "run", "-d", "--name", name, *plan.run_args(cgroup), *ports, *vols, tag])
    after = shell_line(["docker", "exec", name, "systemctl", "is-system-running"]) if plan.init == "systemd" else \
        shell_line(["docker", "logs", name])
    return [line, after]

