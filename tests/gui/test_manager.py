"""The manager window against a real tunnel store and a real Secret Service (no helper running)."""

from __future__ import annotations

import base64
import os
import zipfile
from pathlib import Path

import pytest
from PySide6.QtCore import QMimeData, QPoint, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QGuiApplication
from PySide6.QtWidgets import QApplication, QLabel, QMessageBox, QPushButton

from tests.gui.conftest import OFFICE, PEER_KEY, PRIVATE_KEY, PUBLIC_KEY, wait_idle
from wgdesk.app import dialogs, import_export
from wgdesk.app.manager import ManagerWindow
from wgdesk.app.settings import FULL_TUNNEL, KILL_SWITCH
from wgdesk.app.state import Health

pytestmark = pytest.mark.gui


def _import(qtbot, manager: ManagerWindow, paths: list[Path]) -> None:  # type: ignore[no-untyped-def]
    with qtbot.waitSignal(manager.controller.library.importFinished, timeout=15000):
        manager.import_paths(paths)


def _names(manager: ManagerWindow) -> list[str]:
    return [manager.list.item(i).text() for i in range(manager.list.count())]


def test_import_from_the_file_dialog_shows_the_tunnel_and_keeps_the_key_out_of_the_file(
    qtbot, manager: ManagerWindow, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gui_env
) -> None:
    source = tmp_path / "office.conf"
    source.write_text(OFFICE)
    # the native file dialog is the OS boundary: it returns what the user picked
    monkeypatch.setattr(import_export, "ask_import_files", lambda parent: [source])
    with qtbot.waitSignal(manager.controller.library.importFinished, timeout=15000):
        qtbot.keyClick(manager, Qt.Key.Key_O, Qt.KeyboardModifier.ControlModifier)
    assert _names(manager) == ["office"]
    assert manager.selected() == "office"
    box = manager.last_summary
    assert box is not None and box.isVisible()
    assert box.text() == "1 tunnel(s) imported."
    assert box.informativeText() == f"Imported:\n  {source} as office"
    stored = (tmp_path / "tunnels" / "office.conf").read_text()
    assert PRIVATE_KEY not in stored and "PrivateKey" not in stored
    assert gui_env.backend().get_password("wgdesk", "office:private-key") == PRIVATE_KEY
    # details pane: static config, public key derived from the keyring's private key, no live status
    pane = manager.status_pane
    qtbot.waitUntil(lambda: pane.public_key.label.text() == PUBLIC_KEY, timeout=10000)
    assert pane.addresses.text() == "10.0.0.2/32, fd00::2/128"
    assert pane.dns.text() == "10.0.0.1"
    assert pane.listen_port.text() == "automatic"
    assert pane.mtu.text() == "automatic"
    peer = pane.peer_view(PEER_KEY)
    assert peer is not None
    assert peer.endpoint.text() == "192.0.2.1:51820"
    assert peer.allowed_ips.text() == "10.0.0.0/24"
    assert peer.handshake.text() == "—"
    assert manager.state_label.text() == "disconnected"
    # the linter's findings are shown next to the tunnel
    assert "PersistentKeepalive" in manager.warnings.text()
    # copy button puts the key on the clipboard
    qtbot.mouseClick(pane.public_key.copy, Qt.MouseButton.LeftButton)
    assert QGuiApplication.clipboard().text() == PUBLIC_KEY


def test_zip_import_reports_renamed_and_rejected_files(qtbot, manager: ManagerWindow, tmp_path: Path) -> None:
    first = tmp_path / "office.conf"
    first.write_text(OFFICE)
    _import(qtbot, manager, [first])
    bundle = tmp_path / "provider.zip"
    with zipfile.ZipFile(bundle, "w") as z:
        z.writestr("office.conf", OFFICE)
        z.writestr("broken.conf", OFFICE.replace("DNS = 10.0.0.1", "DNS = 10.0.0.1\nFoo = bar"))
        z.writestr("<i>notes.txt", "not a tunnel")
    _import(qtbot, manager, [bundle])
    assert _names(manager) == ["office", "office-2"]
    assert manager.last_summary.text() == "1 tunnel(s) imported."
    assert manager.last_summary.informativeText() == (
        f"Renamed:\n  {bundle}:office.conf as office-2 (not office: `office` already exists)\n\n"
        f"Rejected:\n  {bundle}:broken.conf:5: unknown key `Foo` in [Interface]\n"
        f"  {bundle}:<i>notes.txt: not a .conf file"
    )
    # names and parser messages come from the files: shown as text, never as markup
    assert manager.last_summary.textFormat() == Qt.TextFormat.PlainText
    assert manager.last_summary.icon() == QMessageBox.Icon.Warning


def test_files_dropped_on_the_window_are_imported(qtbot, manager: ManagerWindow, tmp_path: Path) -> None:
    source = tmp_path / "dropped.conf"
    source.write_text(OFFICE)
    other = tmp_path / "notes.txt"
    other.write_text("not a tunnel")
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(source)), QUrl.fromLocalFile(str(other))])
    enter = QDragEnterEvent(
        QPoint(10, 10),
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    QApplication.sendEvent(manager, enter)
    assert enter.isAccepted()
    drop = QDropEvent(
        QPoint(10, 10),
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    with qtbot.waitSignal(manager.controller.library.importFinished, timeout=15000):
        QApplication.sendEvent(manager, drop)
    assert _names(manager) == ["dropped"]
    # a drag without tunnel files is refused
    text_only = QMimeData()
    text_only.setUrls([QUrl.fromLocalFile(str(other))])
    refused = QDragEnterEvent(
        QPoint(10, 10),
        Qt.DropAction.CopyAction,
        text_only,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    QApplication.sendEvent(manager, refused)
    assert not refused.isAccepted()


def test_paste_from_clipboard_creates_a_tunnel(qtbot, manager: ManagerWindow, gui_env) -> None:
    QGuiApplication.clipboard().setText(OFFICE)
    with qtbot.waitSignal(manager.controller.library.tunnelsChanged, timeout=15000):
        assert import_export.import_clipboard(manager, manager.controller, name="pasted") == "pasted"
    assert _names(manager) == ["pasted"]
    assert gui_env.backend().get_password("wgdesk", "pasted:private-key") == PRIVATE_KEY


def test_paste_of_invalid_text_says_why(
    qtbot, manager: ManagerWindow, monkeypatch: pytest.MonkeyPatch
) -> None:
    shown: list[str] = []
    monkeypatch.setattr(dialogs, "warn", lambda parent, title, text, *a: shown.append(text))
    assert import_export.import_clipboard(manager, manager.controller, text="hello", name="x") is None
    assert shown == [
        "The clipboard does not hold a valid tunnel configuration:\n"
        "clipboard:1: expected `Key = value`, found `hello`"
    ]
    assert _names(manager) == []


def test_paste_of_a_huge_text_is_refused_before_parsing(
    qtbot, manager: ManagerWindow, monkeypatch: pytest.MonkeyPatch
) -> None:
    shown: list[str] = []
    monkeypatch.setattr(dialogs, "warn", lambda parent, title, text, *a: shown.append(text))
    huge = "[Interface]\n" + "# padding\n" * 120_000
    assert import_export.import_clipboard(manager, manager.controller, text=huge, name="x") is None
    assert shown == [
        "The clipboard does not hold a valid tunnel configuration:\n"
        "clipboard: larger than 1 MiB; not a tunnel config"
    ]


def test_add_empty_tunnel_generates_a_key_pair_and_opens_the_editor(
    qtbot, manager: ManagerWindow, gui_env
) -> None:
    with qtbot.waitSignal(manager.controller.library.tunnelsChanged, timeout=15000):
        manager.add_empty_tunnel("fresh")
    assert _names(manager) == ["fresh"]
    assert manager.tabs.currentWidget() is manager.editor
    private = gui_env.backend().get_password("wgdesk", "fresh:private-key")
    assert private and len(private) == 44
    raw = base64.b64decode(private)
    assert (raw[0] & 7, raw[31] & 0xC0) == (0, 0x40)  # clamped, as `wg genkey` makes them
    import subprocess

    expected = subprocess.run(
        ["wg", "pubkey"], input=private, capture_output=True, text=True, check=True
    ).stdout
    qtbot.waitUntil(lambda: manager.editor.public_key.text() == expected.strip(), timeout=10000)
    qtbot.waitUntil(lambda: manager.status_pane.public_key.label.text() == expected.strip(), timeout=10000)


def test_delete_removes_file_and_keyring_items(
    qtbot, manager: ManagerWindow, tmp_path: Path, gui_env, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "office.conf"
    source.write_text(OFFICE)
    _import(qtbot, manager, [source])
    monkeypatch.setattr(dialogs, "ask", lambda *a, **k: QMessageBox.StandardButton.Yes)
    with qtbot.waitSignal(manager.controller.library.tunnelsChanged, timeout=15000):
        manager.delete_button.click()
    assert _names(manager) == []
    assert not (tmp_path / "tunnels" / "office.conf").exists()
    assert gui_env.backend().get_password("wgdesk", "office:private-key") is None


def test_toggles_default_from_the_config_and_are_remembered(
    qtbot, manager: ManagerWindow, tmp_path: Path
) -> None:
    full = tmp_path / "full.conf"
    full.write_text(OFFICE.replace("AllowedIPs = 10.0.0.0/24", "AllowedIPs = 0.0.0.0/0, ::/0"))
    split = tmp_path / "split.conf"
    split.write_text(OFFICE)
    _import(qtbot, manager, [full, split])
    manager.select("full")
    assert manager.full_tunnel.isChecked() and manager.kill_switch.isChecked()
    manager.select("split")
    assert not manager.full_tunnel.isChecked() and not manager.kill_switch.isChecked()
    manager.kill_switch.click()
    assert manager.controller.switch.option("split", KILL_SWITCH) is True
    assert manager.controller.switch.option("split", FULL_TUNNEL) is False
    manager.select("full")
    manager.select("split")
    assert manager.kill_switch.isChecked()


def test_without_a_helper_the_window_says_how_to_fix_it(
    qtbot, manager: ManagerWindow, tmp_path: Path
) -> None:
    banner: QLabel = manager.banner
    qtbot.waitUntil(banner.isVisible, timeout=5000)
    socket = os.environ["WGDESK_SOCKET"]
    assert banner.text() == (
        f"Tunnels cannot be connected: the wgdesk helper is not running (no answer on {socket}); "
        "start it with `sudo systemctl start wgdesk-helper` (or `sudo wgdesk-helper` when developing)\n"
        "Or, for this session only: systemctl start wgdesk-helper (asks for an administrator's password)"
    )
    source = tmp_path / "office.conf"
    source.write_text(OFFICE)
    _import(qtbot, manager, [source])  # importing and editing still work
    with qtbot.waitSignal(manager.controller.notices.failed, timeout=10000) as failed:
        manager.activate_button.click()
    assert failed.args[0] == "Could not connect office"
    assert failed.args[1].startswith("Tunnels cannot be connected: the wgdesk helper is not running")
    assert manager.controller.live.health("office") == Health.DOWN
    wait_idle(qtbot, manager.controller)


def test_a_lint_fix_is_one_click_and_keeps_the_keys(
    qtbot, manager: ManagerWindow, tmp_path: Path, gui_env
) -> None:
    source = tmp_path / "leaky.conf"
    source.write_text(OFFICE.replace("AllowedIPs = 10.0.0.0/24", "AllowedIPs = 0.0.0.0/0"))
    _import(qtbot, manager, [source])
    assert (
        "all IPv4 traffic goes through the tunnel, IPv6 traffic does not (no ::/0)" in manager.warnings.text()
    )
    button = manager.findChild(QPushButton, "fix:ipv6-leak")
    assert button is not None and button.text() == "Fix"
    assert button.toolTip().startswith("add ::/0 to the AllowedIPs of peer 1")
    with qtbot.waitSignal(manager.controller.library.tunnelsChanged, timeout=15000):
        button.click()
    stored = (tmp_path / "tunnels" / "leaky.conf").read_text()
    assert "AllowedIPs = 0.0.0.0/0, ::/0" in stored
    assert "IPv6 traffic does not" not in manager.warnings.text()
    assert gui_env.backend().get_password("wgdesk", "leaky:private-key") == PRIVATE_KEY


def test_warnings_and_their_fixes_are_those_of_the_running_platform(
    qtbot, manager: ManagerWindow, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gui_env
) -> None:
    # the OS is the boundary we cannot run here: this machine answers as macOS would
    monkeypatch.setattr("wgdesk.app.library.system", lambda: "darwin")
    source = tmp_path / "marked.conf"
    source.write_text(OFFICE.replace("DNS = 10.0.0.1", "DNS = 10.0.0.1\nFwMark = 0x20"))
    _import(qtbot, manager, [source])
    assert "FwMark is ignored here: firewall marks do not exist on macOS" in manager.warnings.text()
    button = manager.findChild(QPushButton, "fix:ignored-key")
    assert button is not None and button.toolTip() == "remove FwMark"
    with qtbot.waitSignal(manager.controller.library.tunnelsChanged, timeout=15000):
        button.click()
    assert "FwMark" not in (tmp_path / "tunnels" / "marked.conf").read_text()
    assert "FwMark" not in manager.warnings.text()
    assert gui_env.backend().get_password("wgdesk", "marked:private-key") == PRIVATE_KEY


@pytest.mark.parametrize("with_keys", [True, False])
def test_export_includes_the_keys_only_when_confirmed(
    qtbot, manager: ManagerWindow, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, with_keys: bool
) -> None:
    from PySide6.QtWidgets import QFileDialog

    source = tmp_path / "office.conf"
    source.write_text(OFFICE)
    _import(qtbot, manager, [source])
    target = tmp_path / "out" / "exported.conf"
    target.parent.mkdir()
    # the native dialogs are the OS boundary: the user picks a path and answers the question
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(target), ""))
    answer = QMessageBox.StandardButton.Yes if with_keys else QMessageBox.StandardButton.No
    monkeypatch.setattr(dialogs, "ask", lambda *a, **k: answer)
    with qtbot.waitSignal(manager.controller.notices.notify, timeout=15000) as notice:
        manager.export_button.click()
    assert notice.args[:2] == ["Exported", str(target)]
    text = target.read_text()
    assert (f"PrivateKey = {PRIVATE_KEY}" in text) is with_keys
    assert "PublicKey = " + PEER_KEY in text
    assert target.stat().st_mode & 0o777 == 0o600


def test_a_failed_diagnosis_shows_the_error_as_text_not_markup(
    qtbot, manager: ManagerWindow, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from PySide6.QtGui import QTextDocument

    from wgdesk.client import HelperError

    source = tmp_path / "office.conf"
    source.write_text(OFFICE)
    _import(qtbot, manager, [source])

    def refused() -> None:
        raise HelperError("<config>: <b>not</b> valid", "invalid")

    monkeypatch.setattr(manager.controller.calls, "client", refused)
    manager.doctor.run()
    qtbot.waitUntil(lambda: "failed" in manager.doctor.result.text(), timeout=10000)
    shown = QTextDocument()
    shown.setHtml(manager.doctor.result.text())
    assert shown.toPlainText() == "Diagnosis failed: <config>: <b>not</b> valid"


def test_the_doctor_retries_a_fruitless_diagnosis_after_a_wait_not_every_tick(
    qtbot, manager: ManagerWindow, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from wgdesk.client import HelperError

    source = tmp_path / "office.conf"
    source.write_text(OFFICE)
    _import(qtbot, manager, [source])
    asked: list[int] = []

    def refused() -> None:
        asked.append(1)
        raise HelperError("no evidence yet", "unavailable")

    monkeypatch.setattr(manager.controller.calls, "client", refused)
    doctor, wait = manager.doctor, manager.doctor.WAIT_SECONDS
    for now in (wait + 1, wait + 2, wait + 3, 2 * wait + 2, 2 * wait + 3):  # status ticks
        doctor.maybe_run(Health.WAITING, 0.0, now)
        wait_idle(qtbot, manager.controller)
    assert len(asked) == 2


def test_settings_dialog_writes_the_autostart_entry(
    qtbot, manager: ManagerWindow, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from wgdesk.app.settings_dialog import SettingsDialog

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    dialog = SettingsDialog(manager.controller.settings, manager)
    qtbot.addWidget(dialog)
    assert not dialog.start_at_login.isChecked() and not dialog.restore.isChecked()
    dialog.start_at_login.setChecked(True)
    dialog.restore.setChecked(True)
    dialog.accept()
    assert (tmp_path / "cfg" / "autostart" / "wgdesk.desktop").exists()
    assert manager.controller.settings.restore_tunnels() is True
    again = SettingsDialog(manager.controller.settings, manager)
    qtbot.addWidget(again)
    assert again.start_at_login.isChecked() and again.restore.isChecked()
    again.start_at_login.setChecked(False)
    again.accept()
    assert not (tmp_path / "cfg" / "autostart" / "wgdesk.desktop").exists()


def test_enter_on_a_tunnel_asks_the_helper_and_keyboard_shortcuts_work(
    qtbot, manager: ManagerWindow, tmp_path: Path
) -> None:
    source = tmp_path / "office.conf"
    source.write_text(OFFICE)
    _import(qtbot, manager, [source])
    manager.list.setFocus()
    with qtbot.waitSignal(
        manager.controller.notices.failed, timeout=10000
    ) as failed:  # no helper in this test
        qtbot.keyClick(manager.list, Qt.Key.Key_Return)
    assert failed.args[0] == "Could not connect office"
    box = manager.findChild(QMessageBox, "failure")
    assert box is not None and box.text().startswith("Tunnels cannot be connected")
    box.close()
    manager.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is manager, timeout=3000)
    with qtbot.waitSignal(manager.controller.notices.failed, timeout=10000) as failed:
        qtbot.keyClick(manager, Qt.Key.Key_T, Qt.KeyboardModifier.ControlModifier)
    assert failed.args[0] == "Could not connect office"


def test_rename_moves_file_keys_and_toggles(qtbot, manager: ManagerWindow, tmp_path: Path, gui_env) -> None:
    source = tmp_path / "office.conf"
    source.write_text(OFFICE)
    _import(qtbot, manager, [source])
    manager.kill_switch.click()
    with qtbot.waitSignal(manager.controller.library.tunnelsChanged, timeout=15000):
        manager.rename_selected("work")
    assert _names(manager) == ["work"] and manager.selected() == "work"
    assert not (tmp_path / "tunnels" / "office.conf").exists()
    backend = gui_env.backend()
    assert backend.get_password("wgdesk", "work:private-key") == PRIVATE_KEY
    assert backend.get_password("wgdesk", "office:private-key") is None
    assert manager.controller.switch.option("work", KILL_SWITCH) is True


def test_a_missing_helper_is_notified_once_not_every_poll(qtbot, store, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from PySide6.QtCore import QSettings

    from wgdesk.app.controller import TunnelController
    from wgdesk.app.notices import Notice
    from wgdesk.app.settings import AppSettings
    from wgdesk.client import HelperClient

    socket = str(tmp_path / "nobody-here.sock")
    settings = AppSettings(QSettings(str(tmp_path / "s.conf"), QSettings.Format.IniFormat))
    c = TunnelController(store, lambda: HelperClient(socket, timeout=5), settings, poll_interval=0.1)
    notices: list[tuple[str, str, int]] = []
    c.notices.notify.connect(lambda *a: notices.append(a))
    polls: list[object] = []
    c.live._monitor.helperFailed.connect(polls.append)
    c.start()
    try:
        qtbot.waitUntil(lambda: len(polls) >= 5, timeout=10000)
    finally:
        c.stop()
    assert len(notices) == 1
    title, text, kind = notices[0]
    assert title == "The wgdesk helper is not running" and kind == Notice.ERROR
    assert text.startswith(
        f"Tunnels cannot be connected: the wgdesk helper is not running (no answer on {socket})"
    )


def test_importing_hooks_warns_that_they_will_not_run(qtbot, manager: ManagerWindow, tmp_path: Path) -> None:
    source = tmp_path / "hooky.conf"
    source.write_text(
        OFFICE.replace("DNS = 10.0.0.1", "DNS = 10.0.0.1\nPostUp = touch /tmp/wgdesk-should-not-exist")
    )
    _import(qtbot, manager, [source])
    assert manager.last_summary.informativeText() == (
        f"Imported:\n  {source} as hooky\n\n"
        "These tunnels contain PreUp/PostUp/PreDown/PostDown commands. They are kept but not run unless an "
        "administrator allows scripts: hooky"
    )
    assert "PostUp commands are kept but wgdesk does not run them" in manager.warnings.text()
