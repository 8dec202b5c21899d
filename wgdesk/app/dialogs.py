"""Modal message boxes that show their text as typed.

Tunnel names, paths and parser errors quote what the user (or a file, or the clipboard) wrote; Qt would
render such text as markup if it merely looks like HTML. These boxes always use plain text.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox, QWidget

Button = QMessageBox.StandardButton


def _box(
    parent: QWidget | None,
    icon: QMessageBox.Icon,
    title: str,
    text: str,
    buttons: QMessageBox.StandardButton,
    default: QMessageBox.StandardButton,
) -> QMessageBox:
    box = QMessageBox(icon, title, text, buttons, parent)
    box.setTextFormat(Qt.TextFormat.PlainText)
    box.setDefaultButton(default)
    return box


def warn(parent: QWidget | None, title: str, text: str) -> None:
    """A modal warning with an OK button."""
    _box(parent, QMessageBox.Icon.Warning, title, text, Button.Ok, Button.Ok).exec()


def ask(
    parent: QWidget | None,
    title: str,
    text: str,
    buttons: QMessageBox.StandardButton,
    default: QMessageBox.StandardButton,
) -> QMessageBox.StandardButton:
    """A modal question; returns the button pressed."""
    return Button(_box(parent, QMessageBox.Icon.Question, title, text, buttons, default).exec())
