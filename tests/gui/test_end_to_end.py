"""The whole app against a real helper and the wgdesk engine, with a wireguard-go server, in namespaces the
test creates (tests/helper/lab.py): import through the manager, connect from the tray menu, see the handshake
and the counters rise, disconnect.

``WGDESK_README_SCREENSHOT=1`` runs traffic for longer and writes docs/screenshots/manager.png."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
from PySide6.QtCore import QSettings

from tests.gui.conftest import ARTIFACTS, app_on_helper, close_application, wait_idle
from tests.helper.lab import SERVER_TUNNEL, WGDESK_ENGINE, lab
from tests.netns import unique_name
from wgdesk.app.controller import TunnelController
from wgdesk.app.manager import ManagerWindow
from wgdesk.app.settings import AppSettings
from wgdesk.app.state import Health, IconState
from wgdesk.app.tray import Tray
from wgdesk.client import HelperClient
from wgdesk.snapshots import TunnelSnapshot
from wgdesk.tunnels import TunnelStore

pytestmark = [pytest.mark.root, pytest.mark.gui]

ROOT = Path(__file__).resolve().parents[2]
HANDSHAKE = re.compile(r"^(Now|\d+ seconds? ago)$")
TRANSFER = re.compile(r"^(\d+(\.\d+)? (B|KiB|MiB)) received, (\d+(\.\d+)? (B|KiB|MiB)) sent$")


def _status(socket: Path) -> list[TunnelSnapshot]:
    with HelperClient(socket) as c:
        return c.status()


def _down(socket: Path, name: str) -> None:
    with HelperClient(socket) as c:
        c.down(name)


def _bytes(text: str) -> float:
    value, unit = text.split()
    return float(value) * {"B": 1, "KiB": 1024, "MiB": 1024**2}[unit]


def test_connect_from_the_tray_shows_a_live_handshake_and_rising_counters(
    qtbot,
    store: TunnelStore,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    with lab() as L:
        helper = L.start_helper(engine=WGDESK_ENGINE)
        settings = AppSettings(QSettings(str(tmp_path / "wgdesk.conf"), QSettings.Format.IniFormat))
        controller = TunnelController(
            store, lambda: HelperClient(helper.socket, timeout=60), settings, poll_interval=0.5
        )
        controller.start()
        manager = ManagerWindow(controller)
        qtbot.addWidget(manager)
        tray = Tray(controller)
        notices: list[tuple[str, str]] = []
        controller.notices.notify.connect(lambda title, text, _kind: notices.append((title, text)))
        name = unique_name("office")
        source = tmp_path / f"{name}.conf"
        source.write_text(L.config(keepalive=1))
        try:
            manager.show()
            qtbot.waitExposed(manager)
            with qtbot.waitSignal(controller.library.importFinished, timeout=15000):
                manager.import_paths([source])
            assert manager.selected() == name
            qtbot.waitUntil(
                lambda: controller.live.status_received and not controller.live.helper_problem, timeout=10000
            )
            assert not manager.banner.isVisible()

            tray.rebuild_menu()  # what aboutToShow does when the user opens the menu
            action = tray.action(f"tunnel:{name}")
            assert action is not None and action.isCheckable() and not action.isChecked()
            action.trigger()
            qtbot.waitUntil(lambda: controller.live.health(name) == Health.HEALTHY, timeout=30000)
            assert tray.state == IconState.CONNECTED
            assert notices == [("Connected", f"{name} is connected.")]  # the tray shows these as balloons
            tray.rebuild_menu()
            assert tray.action(f"tunnel:{name}").isChecked()
            assert any("Addresses: 10.97.0.2/32, fd97::2/128" in a.text() for a in tray.menu.actions())

            peer = manager.status_pane.peer_view(L.server_public)
            assert peer is not None
            qtbot.waitUntil(lambda: HANDSHAKE.match(peer.handshake.text()) is not None, timeout=5000)
            assert peer.endpoint.text() == "10.98.2.2:51820"
            assert manager.state_label.text() == "connected"
            qtbot.waitUntil(lambda: TRANSFER.match(peer.transfer.text()) is not None, timeout=5000)
            first = TRANSFER.match(peer.transfer.text())
            assert first is not None
            rx0, tx0 = _bytes(first.group(1)), _bytes(first.group(4))
            assert L.ping(SERVER_TUNNEL[0], 5)  # traffic through the tunnel

            def risen() -> bool:
                m = TRANSFER.match(peer.transfer.text())
                return m is not None and _bytes(m.group(1)) > rx0 and _bytes(m.group(4)) > tx0

            qtbot.waitUntil(risen, timeout=10000)
            qtbot.waitUntil(lambda: peer.graph.peak > 0, timeout=5000)
            manager.tabs.setCurrentWidget(manager.status_pane)
            shots = [ARTIFACTS / "manager-connected.png"]
            if os.environ.get("WGDESK_README_SCREENSHOT"):
                for size in (200, 1200, 600, 1400, 300, 1000):  # varied traffic for the graph
                    ping = L.client.popen(
                        "ping",
                        "-n",
                        "-q",
                        "-c",
                        "25",
                        "-i",
                        "0.2",
                        "-s",
                        str(size),
                        SERVER_TUNNEL[0],
                        stdout=subprocess.DEVNULL,
                    )
                    qtbot.waitUntil(
                        lambda ping=ping: ping.poll() is not None, timeout=60000
                    )  # UI keeps running
                shots.append(ROOT / "docs" / "screenshots" / "manager.png")
            for shot in shots:
                shot.parent.mkdir(parents=True, exist_ok=True)
                assert manager.grab().save(str(shot))

            tray.rebuild_menu()
            tray.action(f"tunnel:{name}").trigger()  # disconnect
            qtbot.waitUntil(lambda: controller.live.health(name) == Health.DOWN, timeout=30000)
            assert _status(helper.socket) == []
            assert tray.state == IconState.DISCONNECTED
            assert notices[-1] == ("Disconnected", f"{name} is disconnected.")
            assert (
                peer.handshake.text() == "—"
                or manager.status_pane.peer_view(L.server_public).handshake.text() == "—"
            )
            assert not L.ping(SERVER_TUNNEL[0], 1, timeout=1)
        finally:
            if controller.live.status(name) is not None:
                _down(helper.socket, name)
            wait_idle(qtbot, controller, 30000)
            controller.stop()
            tray.hide()


def test_doctor_explains_a_server_that_never_answers_and_the_log_shows_the_helper(  # type: ignore[no-untyped-def]
    qtbot, store: TunnelStore, tmp_path: Path
) -> None:
    with lab() as L:
        helper = L.start_helper(engine=WGDESK_ENGINE)
        name = unique_name("wrong")
        source = tmp_path / f"{name}.conf"
        source.write_text(L.config(keepalive=1).replace(":51820", ":51999"))  # nobody listens there
        with app_on_helper(qtbot, store, tmp_path, helper.socket, name) as (controller, manager):
            manager.show()
            with qtbot.waitSignal(controller.library.importFinished, timeout=15000):
                manager.import_paths([source])
            manager.tabs.setCurrentWidget(manager.doctor)
            manager.activate_button.click()
            qtbot.waitUntil(lambda: controller.live.health(name) == Health.WAITING, timeout=30000)
            # the doctor runs by itself once the tunnel has waited past Rekey-Timeout and a retry
            qtbot.waitUntil(lambda: bool(manager.doctor.findings), timeout=40000)
            codes = [f.code for f in manager.doctor.findings]
            assert manager.tabs.tabText(manager.tabs.indexOf(manager.doctor)) == "&Doctor ⚠"
            assert codes[0] == "silence", codes
            assert "No reply at all from the server" in manager.doctor.result.text()
            assert "10.98.2.2:51999" in manager.doctor.findings[0].detail
            assert manager.doctor.public_key.label.text() == L.client_public
            assert controller.settings.last_connected() == [
                name
            ]  # what "restore tunnels" reconnects next start
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            manager.grab().save(str(ARTIFACTS / "doctor.png"))

            manager.tabs.setCurrentWidget(manager.log_view)
            qtbot.waitUntil(
                lambda: any(
                    f"({name}) " in line or "up: interface" in line
                    for line in manager.log_view.visible_lines()
                ),
                timeout=10000,
            )
            assert any("up: interface" in line for line in manager.log_view.visible_lines())
            manager.log_view.filter.setText("no-such-text-in-any-log")
            assert manager.log_view.visible_lines() == []

            manager.activate_button.click()
            qtbot.waitUntil(lambda: controller.live.health(name) == Health.DOWN, timeout=30000)


def test_on_start_the_app_reconnects_the_tunnels_that_were_up(  # type: ignore[no-untyped-def]
    qtbot, gui_env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from PySide6.QtWidgets import QApplication

    from wgdesk.app.main import Application, parse_args
    from wgdesk.app.single_instance import InstanceServer

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))  # the app's default store and settings
    with lab() as L:
        helper = L.start_helper(engine=WGDESK_ENGINE)
        name = unique_name("back")
        source = tmp_path / f"{name}.conf"
        source.write_text(L.config(keepalive=1))
        assert [t.name for t in TunnelStore().import_files([source]).imported] == [name]
        previous = AppSettings()
        previous.set_restore_tunnels(True)
        previous.set_last_connected([name])
        server = InstanceServer()
        assert server.listen()
        app = QApplication.instance()
        assert isinstance(app, QApplication)
        application = Application(app, parse_args(["--socket", str(helper.socket)]), server)
        try:
            qtbot.waitUntil(lambda: [t.name for t in _status(helper.socket)] == [name], timeout=30000)
            qtbot.waitUntil(lambda: application.controller.live.health(name) == Health.HEALTHY, timeout=30000)
        finally:
            if any(t.name == name for t in _status(helper.socket)):
                _down(helper.socket, name)
            close_application(application, server, app)
