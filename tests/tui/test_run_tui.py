"""The wizard's run modes (issue 24): the Archive step shows what the guest runs, the Build
step's choice becomes the image's process, smoke-tested, with compose.yaml beside img.tar."""

from __future__ import annotations

from conftest import docker_client
from textual.widgets import Input, Select, Static

from vm2c_tui.tui import tour
from vm2c_tui.tui.app import Vm2cApp
from vm2c_tui.tui.tour import press_button, wait_until


async def _pick_mode(pilot, app, mode: str) -> None:
    run = app.screen.query_one("#run", Select)
    run.focus()
    await pilot.press("enter")  # opens on one line's select as on any: keys only
    modes = app.state.services.run_modes  # the select's options, shell last
    for _ in range(len(modes) - 1 - modes.index(mode)):
        await pilot.press("up")  # from shell up to MODE
    await pilot.press("enter")
    await pilot.pause()
    assert run.value == mode


async def test_wizard_runs_the_guests_nginx_as_the_image(debian_disk, dockerd, tmp_path, no_leaks):
    out, tag = tmp_path / "out", "vm2c-test/tui:nginx"
    app = Vm2cApp(browse_root=str(debian_disk.parent))
    async with app.run_test(size=(100, 34)) as pilot:
        await tour.to_archive(pilot, str(debian_disk), str(out))
        await press_button(pilot, "#start")
        await wait_until(pilot, lambda: app.state.archive is not None, timeout=120)
        panel = str(app.screen.query_one("#services", Static).render())
        assert "init systemd" in panel and "nginx.service :80" in panel and "service:nginx" in panel
        await press_button(pilot, "#next")
        await tour.reach(pilot, "BuildScreen", "#tag")
        app.screen.query_one("#tag", Input).value = tag
        await _pick_mode(pilot, app, "service:nginx")
        assert app.screen.query_one("#shell", Input).disabled  # the service is the process now
        lines = app.command_lines()
        assert any(line.startswith(f"docker run -d --name tui -p 80:80 -v tui-var-www:/var/www {tag}")
                   for line in lines), lines
        await press_button(pilot, "#build")
        await wait_until(pilot, lambda: app.state.smoke is not None, timeout=180)
        assert app.state.smoke.ok and "HTTP/1.1 200" in app.state.smoke.detail[0], app.state.smoke
        result = str(app.screen.query_one("#build-result", Static).render())
        assert "smoke test of service:nginx ok" in result and "docker run -d --name tui" in result
        await pilot.press("q")
    assert app.return_code == 0
    assert (out / "compose.yaml").is_file() and (out / "kubernetes.yaml").is_file()
    assert (out / "run" / "run.tar").is_file()  # the context the commands panel's docker build names
    assert docker_client().images.get(tag).attrs["Config"]["ExposedPorts"] == {"80/tcp": {}}


async def test_wizard_saves_the_chosen_mode_without_a_daemon(debian_disk, dockerd, tmp_path, monkeypatch,
                                                             no_leaks):
    """No daemon: the image archive Save writes runs the mode chosen on the Build step (it had
    been a shell image whatever was chosen), with compose.yaml beside it."""
    out, tag = tmp_path / "out", "vm2c-test/tui:nginx-saved"
    app = Vm2cApp(browse_root=str(debian_disk.parent))
    with monkeypatch.context() as env:
        env.setenv("DOCKER_HOST", f"unix://{tmp_path}/nothing.sock")
        async with app.run_test(size=(100, 34)) as pilot:
            await tour.to_archive(pilot, str(debian_disk), str(out))
            await press_button(pilot, "#start")
            await wait_until(pilot, lambda: app.state.archive is not None, timeout=120)
            await press_button(pilot, "#next")
            await tour.reach(pilot, "BuildScreen", "#tag")
            app.screen.query_one("#tag", Input).value = tag
            await _pick_mode(pilot, app, "service:nginx")
            await press_button(pilot, "#build")
            await wait_until(pilot, lambda: not app.screen.query_one("#save").disabled, timeout=30)
            await press_button(pilot, "#save")
            result = app.screen.query_one("#build-result", Static)
            await wait_until(pilot, lambda: "load it with" in str(result.render()), timeout=60)
            assert "compose.yaml" in str(result.render())
            await pilot.press("q")
    client = docker_client()
    with open(out / "image-archive.tar", "rb") as f:
        client.images.load(f.read())
    try:
        cfg = client.images.get(tag).attrs["Config"]
        assert cfg["Entrypoint"] == ["/bin/bash", "/usr/local/sbin/vm2c-start"] and "80/tcp" in cfg["ExposedPorts"]
    finally:
        client.images.remove(tag, force=True)
    assert (out / "compose.yaml").is_file()
