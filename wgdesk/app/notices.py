"""What the app tells the user about things that happened: notifications and failed requests.

One channel for one concern, so that every part of the model can speak without knowing the views: the tray
shows ``notify`` as a desktop notification, the manager window in its status bar; ``failed`` (an operation the
user asked for did not happen) becomes a message box.
"""

from __future__ import annotations

import enum

from PySide6.QtCore import QObject, Signal


class Notice(enum.IntEnum):
    """Kinds of notification (for the tray balloon icon)."""

    INFO = 0
    WARNING = 1
    ERROR = 2


class Notices(QObject):
    """The channel: parts of the model call :meth:`tell` and :meth:`fail`; views connect to the signals."""

    notify = Signal(str, str, int)  # title, message, Notice kind
    failed = Signal(str, str)  # title, message: an operation the user asked for failed

    def tell(self, title: str, text: str, kind: Notice = Notice.INFO) -> None:
        """A notification (tray balloon, status bar)."""
        self.notify.emit(title, text, int(kind))

    def fail(self, title: str, text: str) -> None:
        """An operation the user asked for failed (a message box)."""
        self.failed.emit(title, text)
