"""Lockdown in the app, against the real helper in the lab (tests/helper/lab.py): the Settings
checkbox turns it on and off (through the controller's worker, never the UI thread), is disabled
with the reason when the administrator forces it or the helper is gone, and the tray says
"Lockdown: traffic blocked" while it is on and no tunnel is up."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from PySide6.QtCore import QSettings, Qt

from tests.gui.conftest import wait_idle
from tests.helper.lab import NFT, PUBLIC, Lab, lab
from tests.helper.test_lockdown import ld
from tests.netns import unique_name
from wgdesk.app.controller import TunnelController
from wgdesk.app.settings import AppSettings
from wgdesk.app.settings_dialog import SettingsDialog
from wgdesk.app.tray import Tray
from wgdesk.client import HelperClient
from wgdesk.platforms.linux.firewall import KILL_SWITCH_TABLE
from wgdesk.tunnels import TunnelStore

pytestmark = [pytest.mark.root, pytest.mark.gui]

T = unique_name("wgt")


def _table(L: Lab) -> bool:
    return L.client.exec(NFT, "list", "table", "inet", KILL_SWITCH_TABLE, check=False).returncode == 0


def _controller(socket: Path, tmp_path: Path, ui_calls: list[str]) -> TunnelController:
    def factory() -> HelperClient:
        if threading.current_thread() is threading.main_thread():
            ui_calls.append("helper client made on the UI thread")
        return HelperClient(socket, timeout=30)

    settings = AppSettings(QSettings(str(tmp_path / "wgdesk.conf"), QSettings.Format.IniFormat))
    return TunnelController(TunnelStore(directory=tmp_path / "tunnels"), factory, settings, poll_interval=0.2,
                            network_probe=None)  # fmt: skip


def test_settings_checkbox_switches_lockdown_and_the_tray_says_when_it_blocks(qtbot, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ui_calls: list[str] = []
    with lab() as L:
        h = L.start_helper(settings=f'lockdown_file = "{L.workdir / "lib" / "lockdown.json"}"\n')
        controller = _controller(h.socket, tmp_path, ui_calls)
        tray = Tray(controller)
        controller.start()
        try:
            qtbot.waitUntil(lambda: controller.lockdown.state() is not None, timeout=10000)
            assert controller.lockdown.state() == ld(False, "user")
            dialog = SettingsDialog(controller.settings, None, controller)
            qtbot.addWidget(dialog)
            box = dialog.lockdown
            assert box is not None and dialog.lockdown_reason is not None
            assert box.text() == "&Block all traffic when no tunnel is connected (lockdown)"
            assert box.isEnabled() and not box.isChecked()
            assert dialog.lockdown_reason.isHidden()
            explanation = dialog.findChild(type(dialog.lockdown_reason), "lockdown-explanation")
            assert "nothing leaves this computer except through a connected tunnel" in explanation.text()
            tray.rebuild_menu()
            assert tray.action("lockdown") is None
            assert L.ping(PUBLIC, 1)  # control

            qtbot.mouseClick(box, Qt.MouseButton.LeftButton)
            assert box.isChecked()
            with qtbot.waitSignal(controller.lockdown.changed, timeout=10000):
                dialog.accept()
            assert controller.lockdown.state() == ld(True, "user")
            with HelperClient(h.socket) as c:
                assert c.lockdown()["enabled"] is True
            assert _table(L) and not L.ping(PUBLIC, 1, attempts=1)
            tray.rebuild_menu()
            line = tray.action("lockdown")
            assert line is not None and line.text() == "Lockdown: traffic blocked" and not line.isEnabled()
            assert "Lockdown: traffic blocked" in tray.icon.toolTip()

            # a tunnel up: no longer "blocked"; down again: the line is back
            with HelperClient(h.socket) as c:
                c.up(T, L.config(), kill_switch=False)
            # (status answers during a bring-up now: wait for the app to have seen it up, not starting)
            qtbot.waitUntil(lambda: getattr(controller.live.status(T), "state", None) == "up", timeout=10000)
            assert not controller.lockdown.blocking()
            tray.rebuild_menu()
            assert tray.action("lockdown") is None
            with HelperClient(h.socket) as c:
                c.down(T)
            qtbot.waitUntil(lambda: controller.live.status(T) is None, timeout=10000)
            tray.rebuild_menu()
            assert tray.action("lockdown") is not None

            # a new dialog shows it on; unchecking turns it off
            again = SettingsDialog(controller.settings, None, controller)
            qtbot.addWidget(again)
            assert again.lockdown is not None and again.lockdown.isChecked()
            qtbot.mouseClick(again.lockdown, Qt.MouseButton.LeftButton)
            with qtbot.waitSignal(controller.lockdown.changed, timeout=10000):
                again.accept()
            assert controller.lockdown.state() == ld(False, "user")
            assert not _table(L) and L.ping(PUBLIC, 1)
            tray.rebuild_menu()
            assert tray.action("lockdown") is None
            assert "Lockdown" not in tray.icon.toolTip()
            wait_idle(qtbot, controller)
        finally:
            controller.stop()
    assert ui_calls == []


def test_the_checkbox_says_why_it_cannot_change(qtbot, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ui_calls: list[str] = []
    with lab() as L:
        h = L.start_helper(
            settings=f'lockdown = "always"\nlockdown_file = "{L.workdir / "lib" / "lockdown.json"}"\n'
        )
        controller = _controller(h.socket, tmp_path, ui_calls)
        tray = Tray(controller)
        controller.start()
        try:
            qtbot.waitUntil(lambda: controller.lockdown.state() is not None, timeout=10000)
            dialog = SettingsDialog(controller.settings, None, controller)
            qtbot.addWidget(dialog)
            box, reason = dialog.lockdown, dialog.lockdown_reason
            assert box is not None and reason is not None
            assert box.isChecked() and not box.isEnabled()
            assert not reason.isHidden()
            assert reason.text() == (
                'Your administrator keeps lockdown on (lockdown = "always" in /etc/wgdesk/helper.toml).'
            )
            tray.rebuild_menu()
            assert tray.action("lockdown") is not None
            # clicking a disabled box changes nothing, and OK asks the helper nothing
            qtbot.mouseClick(box, Qt.MouseButton.LeftButton)
            assert box.isChecked()
            dialog.accept()
            wait_idle(qtbot, controller)

            # the helper goes away: the box says so (the dialog is still open)
            reopened = SettingsDialog(controller.settings, None, controller)
            qtbot.addWidget(reopened)
            h.stop()
            qtbot.waitUntil(lambda: controller.live.helper_problem != "", timeout=10000)
            assert reopened.lockdown is not None and reopened.lockdown_reason is not None
            assert not reopened.lockdown.isEnabled()
            assert reopened.lockdown_reason.text() == (
                "The wgdesk helper is not running: lockdown cannot be changed now."
            )
            assert controller.lockdown.state() is None
            tray.rebuild_menu()
            assert tray.action("lockdown") is None  # not known: the tray does not guess
        finally:
            controller.stop()
    assert ui_calls == []
