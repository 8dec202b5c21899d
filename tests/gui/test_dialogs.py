"""Modal message boxes show names, paths and parser errors as typed, never as markup."""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QApplication, QMessageBox

from wgdesk.app import dialogs

MARKUP = "<b>bold</b> <img src='/etc/passwd'> & co"


def _answer_when_shown(seen: list[QMessageBox], button: QMessageBox.StandardButton) -> None:
    def look() -> None:
        box = QApplication.activeModalWidget()
        if not isinstance(box, QMessageBox):
            QTimer.singleShot(10, look)
            return
        seen.append(box)
        box.button(button).click()

    QTimer.singleShot(0, look)


def test_a_warning_shows_markup_as_plain_text(qtbot) -> None:  # type: ignore[no-untyped-def]
    seen: list[QMessageBox] = []
    _answer_when_shown(seen, dialogs.Button.Ok)
    dialogs.warn(None, "Title", MARKUP)
    assert len(seen) == 1
    assert seen[0].textFormat() == Qt.TextFormat.PlainText
    assert seen[0].text() == MARKUP and seen[0].icon() == QMessageBox.Icon.Warning


def test_a_question_returns_the_button_pressed(qtbot) -> None:  # type: ignore[no-untyped-def]
    for pressed in (dialogs.Button.Yes, dialogs.Button.No):
        seen: list[QMessageBox] = []
        _answer_when_shown(seen, pressed)
        answer = dialogs.ask(
            None, "Title", f"Delete {MARKUP}?", dialogs.Button.Yes | dialogs.Button.No, dialogs.Button.No
        )
        assert answer == pressed
        assert seen[0].textFormat() == Qt.TextFormat.PlainText
        assert seen[0].text() == f"Delete {MARKUP}?"
        assert seen[0].defaultButton() is seen[0].button(dialogs.Button.No)
