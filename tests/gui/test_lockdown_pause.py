"""Pausing lockdown from the app for a Wi-Fi login page, against the real helper in the lab
(tests/helper/lab.py): the tray offers "Pause lockdown for 2 minutes (Wi-Fi login)" while lockdown
blocks, shows "Lockdown paused — M:SS left (resume now)" while paused, the Settings lockdown group
does the same with a button, every helper call runs on the controller's worker, and a notification
says when the pause has ended by itself."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from tests.gui.conftest import wait_idle
from tests.gui.test_lockdown import _controller, _table
from tests.helper.lab import PUBLIC, Lab, lab
from tests.netns import unique_name
from wgdesk.app.settings_dialog import SettingsDialog
from wgdesk.app.tray import Tray
from wgdesk.client import HelperClient

pytestmark = [pytest.mark.root, pytest.mark.gui]

T = unique_name("wgp")
PAUSED = re.compile(r"Lockdown paused — (2:00|1:[45]\d) left \(resume now\)")


def _helper_settings(L: Lab, extra: str = "") -> str:
    return f'lockdown_file = "{L.workdir / "lib" / "lockdown.json"}"\n{extra}'


def test_tray_and_settings_pause_and_resume_lockdown(qtbot, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ui_calls: list[str] = []
    notes: list[str] = []
    with lab() as L:
        h = L.start_helper(settings=_helper_settings(L))
        with HelperClient(h.socket) as c:
            c.set_lockdown(True)
        controller = _controller(h.socket, tmp_path, ui_calls)
        controller.notices.notify.connect(lambda title, _message, _kind: notes.append(title))
        tray = Tray(controller)
        controller.start()
        try:
            qtbot.waitUntil(controller.lockdown.blocking, timeout=10000)
            tray.rebuild_menu()
            assert tray.action("lockdown") is not None
            pause = tray.action("lockdown-pause")
            assert pause is not None and pause.text() == "Pause lockdown for 2 minutes (Wi-Fi login)"
            assert pause.isEnabled()
            assert "Tunnels with their own kill switch keep blocking." in pause.toolTip()
            assert tray.action("lockdown-resume") is None
            assert not L.ping(PUBLIC, 1, attempts=1)

            with qtbot.waitSignal(controller.lockdown.changed, timeout=10000):
                pause.trigger()
            left = controller.lockdown.pause_left()
            assert left is not None and 115 < left <= 120
            assert not _table(L) and L.ping(PUBLIC, 1)
            with HelperClient(h.socket) as c:
                assert c.lockdown()["paused_until"] is not None
            assert not controller.lockdown.blocking()
            tray.rebuild_menu()
            assert tray.action("lockdown") is None and tray.action("lockdown-pause") is None
            resume = tray.action("lockdown-resume")
            assert resume is not None and PAUSED.fullmatch(resume.text()), resume.text()
            assert "Tunnels with their own kill switch still block." in resume.toolTip()
            assert re.search(r"Lockdown paused — \d:\d\d left", tray.icon.toolTip())

            # the Settings lockdown group shows the same, and its button resumes
            dialog = SettingsDialog(controller.settings, None, controller)
            qtbot.addWidget(dialog)
            button, note = dialog.lockdown_pause, dialog.lockdown_pause_note
            assert button is not None and note is not None
            assert not button.isHidden() and button.text() == "&Resume now"
            assert re.fullmatch(r"Lockdown paused — (2:00|1:[45]\d) left\.", note.text()), note.text()
            with qtbot.waitSignal(controller.lockdown.changed, timeout=10000):
                qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
            assert controller.lockdown.pause_left() is None and controller.lockdown.blocking()
            assert _table(L) and not L.ping(PUBLIC, 1, attempts=1)
            assert button.text() == "&Pause lockdown for 2 minutes (Wi-Fi login)"
            assert "lets everything through without a tunnel for 2 minutes" in note.text()
            tray.rebuild_menu()
            assert tray.action("lockdown-resume") is None and tray.action("lockdown-pause") is not None

            # the dialog's button pauses too
            with qtbot.waitSignal(controller.lockdown.changed, timeout=10000):
                qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
            assert button.text() == "&Resume now" and not _table(L)

            assert "Lockdown is back on" not in notes  # the user ended the pause here: no news

            # ended elsewhere (wgdeskctl lockdown resume): the app says so
            with HelperClient(h.socket) as c:
                c.resume_lockdown()
            qtbot.waitUntil(controller.lockdown.blocking, timeout=10000)
            assert notes.count("Lockdown is back on") == 1

            # a tunnel up: nothing blocks, so nothing to pause
            with HelperClient(h.socket) as c:
                c.up(T, L.config(), kill_switch=False)
            qtbot.waitUntil(lambda: not controller.lockdown.blocking(), timeout=10000)
            tray.rebuild_menu()
            assert tray.action("lockdown-pause") is None and tray.action("lockdown-resume") is None
            assert button.isHidden()
            wait_idle(qtbot, controller)
        finally:
            controller.stop()
    assert ui_calls == []


def test_a_pause_that_ends_by_itself_is_announced(qtbot, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ui_calls: list[str] = []
    notes: list[tuple[str, str]] = []
    with lab() as L:
        h = L.start_helper(settings=_helper_settings(L, "lockdown_pause_max = 5\n"))
        with HelperClient(h.socket) as c:
            c.set_lockdown(True)
        controller = _controller(h.socket, tmp_path, ui_calls)
        controller.notices.notify.connect(lambda title, message, _kind: notes.append((title, message)))
        tray = Tray(controller)
        controller.start()
        try:
            qtbot.waitUntil(controller.lockdown.blocking, timeout=10000)
            tray.rebuild_menu()
            pause = tray.action("lockdown-pause")
            assert pause is not None and pause.text() == "Pause lockdown for 5 seconds (Wi-Fi login)"
            with qtbot.waitSignal(controller.lockdown.changed, timeout=10000):
                pause.trigger()
            assert controller.lockdown.pause_left() is not None and not _table(L)
            qtbot.waitUntil(lambda: "Lockdown is back on" in [t for t, _ in notes], timeout=15000)
            assert (
                "Lockdown is back on",
                "The pause has ended: nothing leaves this computer except through a connected tunnel.",
            ) in notes
            assert controller.lockdown.blocking() and _table(L)
            tray.rebuild_menu()
            assert tray.action("lockdown-resume") is None and tray.action("lockdown-pause") is not None
            wait_idle(qtbot, controller)
        finally:
            controller.stop()
    assert ui_calls == []


def test_no_pause_is_offered_when_the_administrator_forbids_it(qtbot, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ui_calls: list[str] = []
    with lab() as L:
        h = L.start_helper(settings=_helper_settings(L, 'lockdown = "always"\n'))
        controller = _controller(h.socket, tmp_path, ui_calls)
        tray = Tray(controller)
        controller.start()
        try:
            qtbot.waitUntil(controller.lockdown.blocking, timeout=10000)
            tray.rebuild_menu()
            assert tray.action("lockdown") is not None
            assert tray.action("lockdown-pause") is None and tray.action("lockdown-resume") is None
            dialog = SettingsDialog(controller.settings, None, controller)
            qtbot.addWidget(dialog)
            assert dialog.lockdown_pause is not None and dialog.lockdown_pause.isHidden()
            wait_idle(qtbot, controller)
        finally:
            controller.stop()
    assert ui_calls == []
