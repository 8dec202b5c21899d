"""`wgdesk FILE…` as a desktop file association runs it: two real processes share one instance; and the app
without a system tray (plain GNOME) uses the manager window as its main window."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtWidgets import QApplication

from tests.gui.conftest import OFFICE, PRIVATE_KEY
from tests.netns import wait_for
from tests.secret_service import SecretService
from wgdesk.app.main import Application, parse_args
from wgdesk.app.single_instance import InstanceServer

pytestmark = pytest.mark.gui

WGDESK = Path(sys.executable).with_name("wgdesk")


def _argv(*args: str) -> list[str]:
    if WGDESK.exists():  # the installed console script, as the desktop entry calls it
        return [str(WGDESK), *args]
    return [sys.executable, "-m", "wgdesk.app.main", *args]


@pytest.fixture
def app_env(keyring_session: SecretService, tmp_path: Path) -> dict[str, str]:
    env = dict(keyring_session.env)
    env.update(
        QT_QPA_PLATFORM="offscreen",
        XDG_CONFIG_HOME=str(tmp_path / "config"),
        WGDESK_INSTANCE=f"wgdesk-test-{os.getpid()}-{tmp_path.name}",
        WGDESK_SOCKET=str(tmp_path / "no-helper.sock"),
    )
    return env


@pytest.fixture
def first_instance(app_env: dict[str, str], tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    source = tmp_path / "first.conf"
    source.write_text(OFFICE)
    log = open(tmp_path / "first.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(_argv(str(source)), env=app_env, stdout=log, stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def test_second_wgdesk_hands_its_file_to_the_running_instance_and_exits(
    first_instance: subprocess.Popen[bytes],
    app_env: dict[str, str],
    tmp_path: Path,
    keyring_session: SecretService,
) -> None:
    tunnels = tmp_path / "config" / "wgdesk" / "tunnels"
    # without a running instance, `wgdesk FILE` becomes the instance and imports the file itself
    assert wait_for(lambda: (tunnels / "first.conf").exists(), 30), (tmp_path / "first.log").read_text()
    second_file = tmp_path / "second.conf"
    second_file.write_text(OFFICE)
    started = time.monotonic()
    second = subprocess.run(_argv(str(second_file)), env=app_env, capture_output=True, text=True, timeout=30)
    elapsed = time.monotonic() - started
    assert second.returncode == 0, second.stderr
    assert wait_for(lambda: (tunnels / "second.conf").exists(), 20), (tmp_path / "first.log").read_text()
    assert first_instance.poll() is None  # the first instance keeps running; the second one left
    assert elapsed < 15
    backend = keyring_session.backend()
    assert backend.get_password("wgdesk", "first:private-key") == PRIVATE_KEY
    assert backend.get_password("wgdesk", "second:private-key") == PRIVATE_KEY
    assert PRIVATE_KEY not in (tunnels / "second.conf").read_text()


def test_a_stale_instance_socket_is_taken_over(qtbot, gui_env) -> None:  # type: ignore[no-untyped-def]
    name = os.environ["WGDESK_INSTANCE"]
    path = Path("/tmp") / name
    import socket

    dead = socket.socket(socket.AF_UNIX)
    dead.bind(str(path))
    dead.close()  # what a crashed instance leaves behind: a socket file nobody listens on
    try:
        server = InstanceServer()
        assert server.listen()
        server.close()
    finally:
        path.unlink(missing_ok=True)


def test_without_a_system_tray_the_manager_is_the_main_window(qtbot, gui_env, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    app = QApplication.instance()
    assert isinstance(app, QApplication)
    from PySide6.QtWidgets import QSystemTrayIcon

    assert not QSystemTrayIcon.isSystemTrayAvailable()  # offscreen: like GNOME without an extension
    server = InstanceServer()
    assert server.listen()
    application = Application(app, parse_args(["--minimized"]), server)
    try:
        manager = application.manager
        qtbot.waitExposed(manager)
        assert manager.isVisible()  # even with --minimized: there is nowhere else to go
        assert manager.main_window
        assert not application.tray.icon.isVisible()
        assert app.quitOnLastWindowClosed()
        # the helper is not running: the window says so and how to fix it
        qtbot.waitUntil(manager.banner.isVisible, timeout=5000)
        assert manager.banner.text().startswith(
            "Tunnels cannot be connected: the wgdesk helper is not running"
        )
        with qtbot.waitSignal(manager.quitRequested, timeout=2000):
            manager.close()
        assert not application.controller.live._monitor.isRunning()
    finally:
        application.controller.stop()
        server.close()
        application.collector.stop()  # automatic collection back for later tests
        app.setQuitOnLastWindowClosed(True)
        manager.deleteLater()


def test_without_a_graphical_session_wgdesk_says_so_instead_of_aborting(app_env: dict[str, str]) -> None:
    env = {k: v for k, v in app_env.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    result = subprocess.run(_argv(), env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert result.stderr == (
        "wgdesk: no graphical session (neither DISPLAY nor WAYLAND_DISPLAY is set); "
        "use wgdeskctl on the command line\n"
    )
