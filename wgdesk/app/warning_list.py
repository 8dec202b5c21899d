"""The warnings of the linter and the helper above a tunnel's tabs, with *Fix* where a mechanical fix
exists."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QCoreApplication, Qt
from PySide6.QtWidgets import QGridLayout, QLabel, QPushButton, QWidget

from wgdesk.app.library import TunnelLibrary


class WarningList(QWidget):
    """Warnings of the linter and the helper, one per row, with *Fix* where a mechanical fix exists."""

    def __init__(self, library: TunnelLibrary, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("lint-warnings")
        self._library = library
        self._grid = QGridLayout(self)
        self._grid.setContentsMargins(0, 0, 0, 0)
        self._grid.setColumnStretch(0, 1)
        self._key: tuple[object, ...] = ()
        self._lines: list[str] = []
        self.hide()

    def text(self) -> str:
        """All warnings as shown, one per line."""
        return "\n".join(self._lines)

    def show_warnings(self, name: str | None, warnings: list[Any], helper_warnings: list[str]) -> None:
        """Replace the rows (only when something changed, so focus and hover survive the 1 s refresh)."""
        lines = ["⚠ " + _warning_text(w) for w in warnings] + ["⚠ " + w for w in helper_warnings]
        fixable = [w.fix is not None and w.fix.config is not None for w in warnings] + [False] * len(
            helper_warnings
        )
        key = (name, *lines, *fixable)
        if key == self._key:
            return
        self._key, self._lines = key, lines
        while self._grid.count():
            item = self._grid.takeAt(0)
            widget = item.widget() if item is not None else None
            if widget is not None:
                widget.deleteLater()
        for row, (line, can_fix) in enumerate(zip(lines, fixable, strict=True)):
            label = QLabel(line)
            label.setTextFormat(Qt.TextFormat.PlainText)
            label.setWordWrap(True)
            label.setStyleSheet("QLabel { color: #92400e; }")
            label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            self._grid.addWidget(label, row, 0)
            if can_fix and name is not None:
                w = warnings[row]
                button = QPushButton(self.tr("Fix"))
                button.setObjectName(f"fix:{w.code}")
                button.setToolTip(w.fix.description)
                button.setAccessibleDescription(w.fix.description)
                button.clicked.connect(
                    lambda _=False, n=name, c=w.code, ln=w.line: self._library.apply_fix(n, c, ln)
                )
                self._grid.addWidget(button, row, 1)
        self.setVisible(bool(lines))


def _warning_text(warning: object) -> str:
    message = str(getattr(warning, "message", warning))
    line = getattr(warning, "line", None)
    if not line:
        return message
    return QCoreApplication.translate("ManagerWindow", "line {line}: {message}").format(
        line=line, message=message
    )
