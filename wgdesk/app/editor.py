"""The config editor: highlighted text, live validation with the parser's errors, live public key."""

from __future__ import annotations

import re
from functools import partial

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QFontDatabase, QKeySequence, QShortcut, QTextCursor
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from wgdesk.app import dialogs
from wgdesk.app.calculator import ExcludeRangesDialog
from wgdesk.app.controller import TunnelController
from wgdesk.app.highlighter import ConfHighlighter
from wgdesk.app.keys import public_key
from wgdesk.config import ConfigError, parse

_PRIVATE_KEY = re.compile(r"^\s*privatekey\s*=\s*(\S*)\s*(?:#.*)?$", re.IGNORECASE | re.MULTILINE)


class ConfigEditor(QWidget):
    """Edits one tunnel's ``.conf`` text (with its keys, read from the keyring on a worker)."""

    saved = Signal(str)  # tunnel name

    def __init__(self, controller: TunnelController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._controller = controller
        self.name: str | None = None
        self._loaded_text = ""
        layout = QVBoxLayout(self)
        key_row = QHBoxLayout()
        key_row.addWidget(QLabel(self.tr("Public key:")))
        self.public_key = QLabel()
        self.public_key.setObjectName("editor-public-key")
        self.public_key.setTextInteractionFlags(
            Qt.TextInteractionFlag.TextSelectableByMouse | Qt.TextInteractionFlag.TextSelectableByKeyboard
        )
        key_row.addWidget(self.public_key, 1)
        layout.addLayout(key_row)
        self.text = QPlainTextEdit()
        self.text.setObjectName("editor-text")
        self.text.setAccessibleName(self.tr("Tunnel configuration"))
        self.text.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.text.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.text.setTabChangesFocus(True)
        self.highlighter = ConfHighlighter(self.text.document())
        layout.addWidget(self.text, 1)
        self.message = QLabel()
        self.message.setObjectName("editor-message")
        self.message.setTextFormat(Qt.TextFormat.PlainText)  # parser errors quote the user's text
        self.message.setWordWrap(True)
        self.message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.message)
        buttons = QHBoxLayout()
        self.exclude_button = QPushButton(self.tr("E&xclude ranges…"))
        self.exclude_button.setObjectName("editor-exclude-ranges")
        self.exclude_button.setToolTip(
            self.tr("Route a peer's AllowedIPs except ranges you name (e.g. your LAN)")
        )
        self.exclude_button.clicked.connect(self.exclude_ranges)
        self.calculator: ExcludeRangesDialog | None = None
        buttons.addWidget(self.exclude_button)
        buttons.addStretch(1)
        self.revert_button = QPushButton(self.tr("&Revert"))
        self.revert_button.clicked.connect(self.revert)
        self.save_button = QPushButton(self.tr("&Save"))
        self.save_button.setObjectName("editor-save")
        self.save_button.clicked.connect(self.save)
        buttons.addWidget(self.revert_button)
        buttons.addWidget(self.save_button)
        layout.addLayout(buttons)
        QShortcut(QKeySequence.StandardKey.Save, self, self.save)
        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(150)
        self._debounce.timeout.connect(self.validate)
        self.text.textChanged.connect(self._debounce.start)
        self.error: ConfigError | None = None
        self.setEnabled(False)

    def open_tunnel(self, name: str | None) -> None:
        """Load *name* (asynchronously: the private key comes from the keyring)."""
        self.name = name
        self.setEnabled(False)
        self._loaded_text = ""
        self.text.setPlainText("")
        self.message.setText("")
        if name is None:
            return
        self.message.setText(self.tr("Loading…"))
        self._controller.library.load_text(name, partial(self._loaded, name))

    def set_text(self, text: str) -> None:
        """Replace the text and validate it at once."""
        self.text.setPlainText(text)
        self.validate()

    def _loaded(self, name: str, text: str) -> None:
        if name != self.name:
            return
        self._loaded_text = text
        self.setEnabled(True)
        self.set_text(text)

    def revert(self) -> None:
        """Back to the stored text."""
        self.set_text(self._loaded_text)

    @property
    def modified(self) -> bool:
        """Whether the user changed the text since it was loaded or saved."""
        return self.isEnabled() and self.text.toPlainText() != self._loaded_text

    def validate(self) -> ConfigError | None:
        """Parse the text; show the parser's error (with its line) or "valid"; update the public key."""
        self._debounce.stop()
        text = self.text.toPlainText()
        match = _PRIVATE_KEY.search(text)
        if match is None:
            self.public_key.setText(self.tr("(no private key)"))
        else:
            derived = public_key(match.group(1))
            self.public_key.setText(derived or self.tr("(invalid private key)"))
        try:
            parse(text, filename=f"{self.name or 'tunnel'}.conf")
        except ConfigError as exc:
            self.error = exc
            self.message.setText(str(exc))
            self.message.setStyleSheet("color: #b91c1c;")
            self.highlighter.set_error_lines({exc.line} if exc.line else set())
            self.save_button.setEnabled(False)
            return exc
        self.error = None
        self.message.setText(self.tr("Configuration is valid."))
        self.message.setStyleSheet("color: #15803d;")
        self.highlighter.set_error_lines(set())
        self.save_button.setEnabled(True)
        return None

    def save(self) -> bool:
        """Store the text; refuses (and says why) when it does not parse. Returns whether saving started."""
        if self.name is None:
            return False
        error = self.validate()
        if error is not None:
            self.message.setText(self.tr("Not saved: {error}").format(error=error))
            return False
        name, text = self.name, self.text.toPlainText()
        status = self._controller.live.status(name)

        def on_saved() -> None:
            if self.name == name:  # the user may have moved on to another tunnel meanwhile
                self._loaded_text = text
                self.message.setText(self.tr("Saved."))
            self.saved.emit(name)
            if status is not None and status.state == "up":
                self._controller.switch.update_live(
                    name, partial(self._applied, name), partial(self._offer_restart, name)
                )
            elif status is not None:
                self._offer_restart(name, [])

        self._controller.library.save(name, text, on_saved)
        return True

    def exclude_ranges(self) -> None:
        """Open the "Exclude ranges…" dialog on the current text; OK replaces the text (one undo step)."""
        error = self.validate()
        if error is not None:
            dialogs.warn(
                self, self.tr("Exclude ranges"), self.tr("Fix this first: {error}").format(error=error)
            )
            return
        text = self.text.toPlainText()
        if not parse(text).peers:
            dialogs.warn(self, self.tr("Exclude ranges"), self.tr("This tunnel has no [Peer] section yet."))
            return
        if self.calculator is not None:
            self.calculator.deleteLater()  # the previous one, closed (the dialog is window-modal)
        self.calculator = ExcludeRangesDialog(text, f"{self.name or 'tunnel'}.conf", self)
        self.calculator.setWindowModality(Qt.WindowModality.WindowModal)
        self.calculator.accepted.connect(partial(self._exclude_accepted, self.calculator))
        self.calculator.open()

    def _exclude_accepted(self, dialog: ExcludeRangesDialog) -> None:
        if dialog.new_text is None or not self.isEnabled():
            return
        cursor = self.text.textCursor()
        cursor.beginEditBlock()
        cursor.select(QTextCursor.SelectionType.Document)
        cursor.insertText(dialog.new_text)
        cursor.endEditBlock()
        self.validate()

    def _applied(self, name: str, _result: object) -> None:
        if self.name == name:
            self.message.setText(self.tr("Saved and applied to the connected tunnel."))

    def _offer_restart(self, name: str, keys: list[str]) -> None:
        question = self.tr("{name} is connected. Reconnect now to apply the changes?").format(name=name)
        if keys:
            question = self.tr(
                "{name} is connected, and {keys} can only change when it reconnects. "
                "Reconnect now to apply the changes?"
            ).format(name=name, keys=", ".join(keys))
        box = QMessageBox(
            QMessageBox.Icon.Question,
            self.tr("Apply changes"),
            question,
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            self,
        )
        box.setObjectName("restart-question")
        box.setWindowModality(Qt.WindowModality.WindowModal)
        box.finished.connect(
            lambda result: (
                self._controller.switch.restart(name) if result == QMessageBox.StandardButton.Yes else None
            )
        )
        box.open()
