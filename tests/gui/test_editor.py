"""The config editor: live validation with the parser's messages, live public key, no invalid saves."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QTextCharFormat

from tests.gui.conftest import OFFICE, PRIVATE_KEY, PUBLIC_KEY
from wgdesk.app import dialogs
from wgdesk.app.editor import ConfigEditor
from wgdesk.app.highlighter import ConfHighlighter
from wgdesk.app.manager import ManagerWindow

pytestmark = pytest.mark.gui


@pytest.fixture
def editor(qtbot, manager: ManagerWindow, tmp_path: Path) -> ConfigEditor:  # type: ignore[no-untyped-def]
    source = tmp_path / "office.conf"
    source.write_text(OFFICE)
    with qtbot.waitSignal(manager.controller.library.importFinished, timeout=15000):
        manager.import_paths([source])
    failures: list[tuple[str, str]] = []
    manager.controller.notices.failed.connect(lambda title, message: failures.append((title, message)))
    manager.tabs.setCurrentWidget(manager.editor)
    ed = manager.editor
    # text with the key loaded from the keyring (a failed read would leave it disabled: say why)
    qtbot.waitUntil(lambda: ed.isEnabled() or bool(failures), timeout=20000)
    assert not failures, failures
    return ed


BROKEN = [
    (
        "PrivateKey = abc",
        "office.conf:2: PrivateKey is not a valid key: expected 44 characters of base64 that decode to "
        "32 bytes (found 3 characters)",
    ),
    (
        "Address = 10.0.0.1/33",
        "office.conf:3: Address entry `10.0.0.1/33` has an invalid prefix length (0 to 32 for IPv4)",
    ),
    (
        "Endpoint = vpn.example.com",
        "office.conf:9: Endpoint `vpn.example.com` has no port: write host:port or [IPv6]:port",
    ),
    ("ListenPort = 70000", "office.conf:2: ListenPort must be a port number from 0 to 65535, not `70000`"),
    ("[Interfase]", "office.conf:1: unknown section `[Interfase]`: expected [Interface] or [Peer]"),
]


def _break(text: str, replacement: str) -> str:
    key = replacement.split("=")[0].strip()
    lines = text.splitlines()
    if key.startswith("["):
        lines[0] = replacement
    elif key == "ListenPort":
        lines.insert(1, replacement)
    else:
        lines = [replacement if line.split("=")[0].strip() == key else line for line in lines]
    return "\n".join(lines) + "\n"


def test_loaded_text_has_the_key_and_is_valid(editor: ConfigEditor) -> None:
    assert f"PrivateKey = {PRIVATE_KEY}" in editor.text.toPlainText()
    assert editor.message.text() == "Configuration is valid."
    assert editor.public_key.text() == PUBLIC_KEY
    assert editor.save_button.isEnabled()


def test_an_error_quoting_markup_is_shown_as_text(qtbot, editor: ConfigEditor) -> None:  # type: ignore[no-untyped-def]
    editor.set_text("[Interface]\n<b>bold</b> = 1\n")
    assert editor.message.text() == "office.conf:2: unknown key `<b>bold</b>` in [Interface]"
    # a QLabel guesses rich text from a tag before the first line break: this one must not
    assert editor.message.textFormat() == Qt.TextFormat.PlainText


@pytest.mark.parametrize(("replacement", "message"), BROKEN)
def test_live_validation_shows_the_parsers_error(
    qtbot,
    editor: ConfigEditor,
    replacement: str,  # type: ignore[no-untyped-def]
    message: str,
) -> None:
    editor.text.setPlainText(_break(editor.text.toPlainText(), replacement))
    qtbot.waitUntil(lambda: editor.message.text() == message, timeout=3000)  # debounced, no explicit call
    assert not editor.save_button.isEnabled()
    line = int(message.split(":")[1])
    assert editor.highlighter.error_lines == {line}


def test_save_refuses_an_invalid_config_and_keeps_the_stored_one(
    qtbot,
    editor: ConfigEditor,  # type: ignore[no-untyped-def]
    manager: ManagerWindow,
    tmp_path: Path,
) -> None:
    stored = (tmp_path / "tunnels" / "office.conf").read_text()
    editor.text.setPlainText(editor.text.toPlainText() + "Foo = bar\n")
    assert editor.save() is False
    assert editor.message.text() == "Not saved: office.conf:10: unknown key `Foo` in [Peer]"
    qtbot.wait(300)
    assert (tmp_path / "tunnels" / "office.conf").read_text() == stored


def test_save_stores_a_valid_edit(
    qtbot, editor: ConfigEditor, manager: ManagerWindow, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    editor.text.setPlainText(editor.text.toPlainText().replace("DNS = 10.0.0.1", "DNS = 10.0.0.53"))
    with qtbot.waitSignal(editor.saved, timeout=10000):
        assert editor.save() is True
    assert "DNS = 10.0.0.53" in (tmp_path / "tunnels" / "office.conf").read_text()
    assert editor.message.text() == "Saved."
    assert manager.status_pane.dns.text() == "10.0.0.53"


def test_public_key_follows_the_private_key_as_typed(qtbot, editor: ConfigEditor) -> None:  # type: ignore[no-untyped-def]
    new_private = subprocess.run(["wg", "genkey"], capture_output=True, text=True, check=True).stdout.strip()
    expected = subprocess.run(
        ["wg", "pubkey"], input=new_private, capture_output=True, text=True, check=True
    ).stdout.strip()
    editor.text.setPlainText(editor.text.toPlainText().replace(PRIVATE_KEY, new_private))
    qtbot.waitUntil(lambda: editor.public_key.text() == expected, timeout=3000)
    editor.text.setPlainText(editor.text.toPlainText().replace(new_private, new_private[:20]))
    qtbot.waitUntil(lambda: editor.public_key.text() == "(invalid private key)", timeout=3000)


def _format_at(highlighter: ConfHighlighter, line: int, column: int) -> tuple[str, bool, bool]:
    """(foreground colour, wavy underline, italic) at a 1-based line and 0-based column."""
    block = highlighter.document().findBlockByNumber(line - 1)
    for r in block.layout().formats():
        if r.start <= column < r.start + r.length:
            f = r.format
            wavy = f.underlineStyle() == QTextCharFormat.UnderlineStyle.WaveUnderline
            return f.foreground().color().name(), wavy, f.fontItalic()
    return "", False, False


def test_highlighter_marks_sections_keys_values_and_invalid_tokens(qtbot, editor: ConfigEditor) -> None:  # type: ignore[no-untyped-def]
    editor.text.setPlainText(
        f"[Interface]\nPrivateKey = {PRIVATE_KEY}  # comment\nFoo = 1\n[Peer]\nAddress = 10.0.0.1\njunk\n"
    )
    editor.validate()
    h = editor.highlighter
    assert h.error_lines == {3}  # the parser's first error: the unknown key
    section, key, value = (f.foreground().color().name() for f in (h.section, h.key, h.value))
    assert _format_at(h, 1, 1) == (section, False, False)
    assert _format_at(h, 2, 0) == (key, False, False)
    assert _format_at(h, 2, 13) == (value, False, False)
    assert _format_at(h, 2, 60)[2]  # the comment is italic
    assert _format_at(h, 3, 0)[1]  # unknown key: wavy underline
    assert _format_at(h, 5, 0)[1]  # an [Interface] key inside [Peer]
    assert _format_at(h, 6, 0)[1]  # not key = value


def test_switching_tunnels_offers_to_save_unsaved_edits(  # type: ignore[no-untyped-def]
    qtbot, editor: ConfigEditor, manager: ManagerWindow, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from PySide6.QtWidgets import QMessageBox

    other = tmp_path / "other.conf"
    other.write_text(OFFICE)
    with qtbot.waitSignal(manager.controller.library.importFinished, timeout=15000):
        manager.import_paths([other])  # selects "other"; nothing was edited yet, so no question
    manager.select("office")
    qtbot.waitUntil(lambda: editor.name == "office" and editor.isEnabled(), timeout=10000)
    asked: list[str] = []

    def answer(parent, title, text, *a):  # type: ignore[no-untyped-def]
        asked.append(text)
        return QMessageBox.StandardButton.Save

    monkeypatch.setattr(dialogs, "ask", answer)
    editor.text.setPlainText(editor.text.toPlainText().replace("DNS = 10.0.0.1", "DNS = 10.0.0.99"))
    with qtbot.waitSignal(editor.saved, timeout=10000):
        manager.select("other")
    assert asked == ["Save your changes to office?"]
    assert "DNS = 10.0.0.99" in (tmp_path / "tunnels" / "office.conf").read_text()
    qtbot.waitUntil(
        lambda: editor.name == "other" and "DNS = 10.0.0.1\n" in editor.text.toPlainText(), timeout=10000
    )
    assert not editor.modified
