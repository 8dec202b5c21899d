"""The helper's and engine's log for one tunnel: filterable, copyable, saveable; refreshed while visible."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

from PySide6.QtCore import QTimer
from PySide6.QtGui import QFontDatabase, QGuiApplication
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from wgdesk.app.controller import TunnelController

LEVELS = ("debug", "info", "warning", "error")
MAX_ENTRIES = 5000


def format_entry(entry: dict[str, Any]) -> str:
    """``2026-11-25 22:01:07 engine  info     message``."""
    when = entry.get("time")
    try:
        stamp = datetime.datetime.fromtimestamp(float(when)).strftime("%Y-%m-%d %H:%M:%S")  # type: ignore[arg-type]
    except (TypeError, ValueError):
        stamp = str(when or "")
    return f"{stamp} {entry.get('source', ''):<6} {entry.get('level', ''):<8} {entry.get('message', '')}"


def matches(entry: dict[str, Any], text: str, min_level: str, source: str) -> bool:
    """Whether *entry* passes the filters: *text* in the message (any case), level at least *min_level*."""
    level = str(entry.get("level", "info")).lower()
    rank = LEVELS.index(level) if level in LEVELS else 1
    if rank < LEVELS.index(min_level):
        return False
    if source and entry.get("source") != source:
        return False
    return not text or text.lower() in str(entry.get("message", "")).lower()


class LogView(QWidget):
    """Fetches ``client.logs(name, since)`` on a worker every 2 s while shown."""

    def __init__(self, controller: TunnelController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._controller = controller
        self._name: str | None = None
        self._entries: list[dict[str, Any]] = []
        self._since: float | None = None
        self._fetching = False
        layout = QVBoxLayout(self)
        filters = QHBoxLayout()
        self.filter = QLineEdit()
        self.filter.setPlaceholderText(self.tr("Filter…"))
        self.filter.setClearButtonEnabled(True)
        self.level = QComboBox()
        for level, label in zip(
            LEVELS,
            (
                self.tr("Debug and above"),
                self.tr("Info and above"),
                self.tr("Warnings and errors"),
                self.tr("Errors only"),
            ),
            strict=True,
        ):
            self.level.addItem(label, level)
        self.level.setCurrentIndex(1)
        self.source = QComboBox()
        self.source.addItem(self.tr("Helper and engine"), "")
        self.source.addItem(self.tr("Helper"), "helper")
        self.source.addItem(self.tr("Engine"), "engine")
        filters.addWidget(self.filter, 1)
        filters.addWidget(self.level)
        filters.addWidget(self.source)
        layout.addLayout(filters)
        self.text = QPlainTextEdit()
        self.text.setObjectName("log-text")
        self.text.setReadOnly(True)
        self.text.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.text.setAccessibleName(self.tr("Tunnel log"))
        layout.addWidget(self.text, 1)
        buttons = QHBoxLayout()
        self.status = QPushButton()
        self.status.setFlat(True)
        self.status.setEnabled(False)
        buttons.addWidget(self.status, 1)
        self.copy_button = QPushButton(self.tr("&Copy"))
        self.copy_button.clicked.connect(self.copy)
        self.save_button = QPushButton(self.tr("Save &as…"))
        self.save_button.clicked.connect(self.save_as)
        buttons.addWidget(self.copy_button)
        buttons.addWidget(self.save_button)
        layout.addLayout(buttons)
        self.filter.textChanged.connect(self.refresh_text)
        self.level.currentIndexChanged.connect(self.refresh_text)
        self.source.currentIndexChanged.connect(self.refresh_text)
        self._timer = QTimer(self)
        self._timer.setInterval(2000)
        self._timer.timeout.connect(self.fetch)

    def show_tunnel(self, name: str | None) -> None:
        """Show the log of *name* (fetching starts when the view is visible)."""
        self._name = name
        self._entries = []
        self._since = None
        self.refresh_text()
        if self.isVisible():
            self.fetch()

    def showEvent(self, event: Any) -> None:
        super().showEvent(event)
        self._timer.start()
        self.fetch()

    def hideEvent(self, event: Any) -> None:
        super().hideEvent(event)
        self._timer.stop()

    def fetch(self) -> None:
        """Ask the helper for new entries (one request at a time)."""
        if self._name is None or self._fetching:
            return
        self._fetching = True
        name, since = self._name, self._since

        def done(entries: object) -> None:
            self._fetching = False
            if name != self._name or not isinstance(entries, list):
                return
            self.add_entries(entries)

        def failed(exc: object) -> None:
            self._fetching = False
            self.status.setText(self.tr("Log unavailable: {error}").format(error=str(exc).splitlines()[0]))

        self._controller.calls.submit(lambda c: c.logs(name, since=since), done, failed)

    def add_entries(self, entries: list[dict[str, Any]]) -> None:
        """Append entries (newer than the last one seen) and re-render."""
        if not entries:
            return
        newest = self._since
        for e in entries:
            t = e.get("time")
            if isinstance(t, (int, float)) and (newest is None or t > newest):
                newest = float(t)
        self._since = newest
        self._entries.extend(entries)
        del self._entries[:-MAX_ENTRIES]
        self.refresh_text()

    def visible_lines(self) -> list[str]:
        """The lines that pass the current filters."""
        text, level, source = self.filter.text(), self.level.currentData(), self.source.currentData()
        return [format_entry(e) for e in self._entries if matches(e, text, level, source)]

    def refresh_text(self) -> None:
        """Re-apply the filters to the entries held."""
        lines = self.visible_lines()
        self.text.setPlainText("\n".join(lines))
        self.text.verticalScrollBar().setValue(self.text.verticalScrollBar().maximum())
        self.status.setText(
            self.tr("{shown} of {total} entries").format(shown=len(lines), total=len(self._entries))
        )

    def copy(self) -> None:
        """Copy the shown lines (or the selection) to the clipboard."""
        selected = self.text.textCursor().selectedText().replace("\u2029", "\n")
        QGuiApplication.clipboard().setText(selected or self.text.toPlainText())

    def save_as(self) -> None:
        """Save the shown lines to a file."""
        path, _ = QFileDialog.getSaveFileName(
            self,
            self.tr("Save log"),
            str(Path.home() / f"wgdesk-{self._name or 'log'}.log"),
            self.tr("Log files (*.log *.txt)"),
        )
        if path:
            Path(path).write_text(self.text.toPlainText() + "\n")
