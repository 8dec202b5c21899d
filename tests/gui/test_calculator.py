"""The editor's "Exclude ranges…" dialog, driven for real: typed ranges, the live preview, OK rewriting only
the chosen peer's AllowedIPs line in the editor text."""

from __future__ import annotations

from ipaddress import ip_address
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from tests.gui.conftest import PEER_KEY, PRIVATE_KEY
from wgdesk.app import dialogs
from wgdesk.app.calculator import ExcludeRangesDialog
from wgdesk.app.editor import ConfigEditor
from wgdesk.app.manager import ManagerWindow
from wgdesk.config import PRIVATE_LAN_RANGES, allowed_ips, parse

pytestmark = pytest.mark.gui

SECOND_KEY = "NKODD3gqzjAFl5CBPuaiq+vn5BBAW6d9LN/QYCd2QjQ="

# 0.0.0.0/0 minus 10.0.0.0/8, derived bit by bit in tests/config/test_calculator.py
ALL_BUT_10 = "0.0.0.0/5, 8.0.0.0/7, 11.0.0.0/8, 12.0.0.0/6, 16.0.0.0/4, 32.0.0.0/3, 64.0.0.0/2, 128.0.0.0/1"

HOME = f"""[Interface]
PrivateKey = {PRIVATE_KEY}
Address = 10.0.0.2/32, fd00::2/128
DNS = 10.0.0.1

[Peer]
# the office
PublicKey = {SECOND_KEY}
Endpoint = 198.51.100.7:51820
AllowedIPs = 172.16.0.0/12

[Peer]
# the VPN provider
PublicKey = {PEER_KEY}
Endpoint = 192.0.2.1:51820
AllowedIPs = 0.0.0.0/0, ::/0   # everything
PersistentKeepalive = 25
"""

ONE_PEER = HOME[: HOME.index("[Peer]")] + HOME[HOME.index("[Peer]\n# the VPN") :]


def open_editor(qtbot, manager: ManagerWindow, tmp_path: Path, text: str) -> ConfigEditor:  # type: ignore[no-untyped-def]
    source = tmp_path / "home.conf"
    source.write_text(text)
    with qtbot.waitSignal(manager.controller.library.importFinished, timeout=15000):
        manager.import_paths([source])
    manager.tabs.setCurrentWidget(manager.editor)
    ed = manager.editor
    qtbot.waitUntil(lambda: ed.isEnabled() and ed.name == "home", timeout=10000)
    ed.set_text(text)  # with comments, as the user typed them (the store keeps none)
    return ed


def open_dialog(qtbot, editor: ConfigEditor) -> ExcludeRangesDialog:  # type: ignore[no-untyped-def]
    qtbot.mouseClick(editor.exclude_button, Qt.MouseButton.LeftButton)
    dialog = editor.calculator
    assert dialog is not None
    qtbot.waitExposed(dialog)
    return dialog


def test_exclude_a_range_from_the_only_peer(qtbot, manager: ManagerWindow, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    editor = open_editor(qtbot, manager, tmp_path, ONE_PEER)
    dialog = open_dialog(qtbot, editor)
    assert dialog.peer.isHidden()  # one peer: nothing to pick
    assert dialog.current.text() == "0.0.0.0/0, ::/0"
    assert dialog.message.text() == "No change: none of these ranges is routed through this peer."
    assert not dialog.ok_button.isEnabled()

    qtbot.keyClicks(dialog.exclude, "10.0.0.0/8")
    # 192.0.2.1, the endpoint, is inside the new routes, and without a /0 it would loop
    assert dialog.endpoint.isVisibleTo(dialog) and dialog.endpoint.isChecked()
    assert dialog.endpoint.text() == "Keep the endpoint 192.0.2.1 out of the tunnel"
    preview = dialog.preview.toPlainText()
    assert not any(ip_address("192.0.2.1") in n for n in parse_value(preview))
    assert preview == ", ".join(str(n) for n in allowed_ips([*ALL_BUT_10.split(", "), "::/0"], ["192.0.2.1"]))
    dialog.endpoint.click()
    assert dialog.preview.toPlainText() == f"{ALL_BUT_10}, ::/0"
    assert dialog.message.text() == (
        "9 ranges. Without a /0 route the tunnel's own packets to 192.0.2.1 would enter the tunnel."
    )
    assert dialog.ok_button.isEnabled()

    qtbot.mouseClick(dialog.ok_button, Qt.MouseButton.LeftButton)
    assert dialog.result() == dialog.DialogCode.Accepted
    expected = ONE_PEER.replace(
        "AllowedIPs = 0.0.0.0/0, ::/0   # everything", f"AllowedIPs = {ALL_BUT_10}, ::/0   # everything"
    )
    assert editor.text.toPlainText() == expected
    assert editor.message.text() == "Configuration is valid."
    assert editor.modified
    editor.text.undo()  # one undo step back to the text before
    assert editor.text.toPlainText() == ONE_PEER


def parse_value(value: str) -> list:  # type: ignore[type-arg]
    text = f"[Interface]\nPrivateKey = {PRIVATE_KEY}\n[Peer]\nPublicKey = {PEER_KEY}\nAllowedIPs = {value}\n"
    return list(parse(text).peers[0].allowed_ips)


def test_keep_local_networks_out_and_pick_the_peer(qtbot, manager: ManagerWindow, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    editor = open_editor(qtbot, manager, tmp_path, HOME)
    dialog = open_dialog(qtbot, editor)
    assert not dialog.peer.isHidden()
    assert dialog.peer.count() == 2
    assert dialog.current.text() == "172.16.0.0/12"
    dialog.peer.setFocus()
    qtbot.keyClick(dialog.peer, Qt.Key.Key_Down)
    assert dialog.peer.currentIndex() == 1
    assert dialog.peer.currentText() == f"Peer 2 ({PEER_KEY[:8]}…, 192.0.2.1:51820)"
    assert dialog.current.text() == "0.0.0.0/0, ::/0"

    qtbot.mouseClick(dialog.private, Qt.MouseButton.LeftButton)
    assert dialog.private.isChecked()
    qtbot.keyClicks(dialog.exclude, "203.0.113.0/24")
    preview = dialog.preview.toPlainText()
    routed = parse_value(preview)
    local = ("192.168.1.1", "10.1.2.3", "172.16.5.5", "169.254.1.1", "fe80::1", "fd00::1")
    for inside in (*local, "203.0.113.9"):
        assert not any(ip_address(inside) in n for n in routed), inside
    for outside in ("8.8.8.8", "172.32.0.1", "100.64.0.1", "2001:db8::1", "203.0.114.1"):
        assert any(ip_address(outside) in n for n in routed), outside
    assert preview == ", ".join(
        str(n)
        for n in allowed_ips(["0.0.0.0/0", "::/0"], [*PRIVATE_LAN_RANGES, "203.0.113.0/24", "192.0.2.1/32"])
    )

    assert dialog.message.text() == (
        f"{len(routed)} ranges. Without 0.0.0.0/0 or ::/0 this is no longer a full tunnel: the Full tunnel "
        "switch and a kill switch set to follow it no longer apply."
    )
    qtbot.mouseClick(dialog.ok_button, Qt.MouseButton.LeftButton)
    lines = editor.text.toPlainText().split("\n")
    before = HOME.split("\n")
    changed = [i for i, (a, b) in enumerate(zip(lines, before, strict=True)) if a != b]
    assert changed == [before.index("AllowedIPs = 0.0.0.0/0, ::/0   # everything")]
    assert lines[changed[0]] == f"AllowedIPs = {preview}   # everything"
    cfg = parse(editor.text.toPlainText())
    assert cfg.peers[0] == parse(HOME).peers[0]
    assert ", ".join(str(n) for n in cfg.peers[1].allowed_ips) == preview


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        (
            "192.168.1.1/24",
            "Exclude: entry `192.168.1.1/24` has host bits set: "
            "the /24 block that holds it is `192.168.1.0/24`",
        ),
        ("<b>lan</b>", "Exclude: entry `<b>lan</b>` is not an IP address with an optional /prefix"),
        ("0.0.0.0/0, ::/0", "Nothing would be left to route through this peer."),
        ("10.0.0.0/8", "No change: none of these ranges is routed through this peer."),
    ],
)
def test_ok_is_refused_with_a_reason(  # type: ignore[no-untyped-def]
    qtbot, manager: ManagerWindow, tmp_path: Path, typed: str, message: str
) -> None:
    editor = open_editor(qtbot, manager, tmp_path, HOME)  # peer 1 routes 172.16.0.0/12 only
    dialog = open_dialog(qtbot, editor)
    qtbot.keyClicks(dialog.exclude, typed)
    assert dialog.message.text() == message
    assert dialog.message.textFormat() == Qt.TextFormat.PlainText
    assert not dialog.ok_button.isEnabled()
    qtbot.keyClick(dialog.exclude, Qt.Key.Key_Return)  # the default button does nothing either
    assert dialog.isVisible()
    qtbot.mouseClick(dialog.buttons.button(dialog.buttons.StandardButton.Cancel), Qt.MouseButton.LeftButton)
    assert not dialog.isVisible()
    assert editor.text.toPlainText() == HOME


def test_an_invalid_config_is_not_calculated_on(  # type: ignore[no-untyped-def]
    qtbot, manager: ManagerWindow, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    editor = open_editor(qtbot, manager, tmp_path, HOME)
    warned: list[str] = []
    monkeypatch.setattr(dialogs, "warn", lambda parent, title, text: warned.append(text))
    editor.text.setPlainText(HOME.replace("AllowedIPs = 172.16.0.0/12", "AllowedIPs = 172.16.0.0/33"))
    qtbot.mouseClick(editor.exclude_button, Qt.MouseButton.LeftButton)
    assert warned == [
        "Fix this first: home.conf:10: AllowedIPs entry `172.16.0.0/33` has an invalid prefix length "
        "(0 to 32 for IPv4)"
    ]
    assert editor.calculator is None
    editor.text.setPlainText(HOME[: HOME.index("[Peer]")])
    qtbot.mouseClick(editor.exclude_button, Qt.MouseButton.LeftButton)
    assert warned[1:] == ["This tunnel has no [Peer] section yet."]
    assert editor.calculator is None
