"""Files the OS asks the app to open by an event instead of on its command line.

On macOS a double-click on a ``.conf`` in Finder (or "Open With", or a file dropped on the app) never
runs ``wgdesk FILE``: LaunchServices starts the bundle without arguments, or starts nothing when it
already runs, and sends an Apple Event that Qt turns into a `QFileOpenEvent` on the `QApplication`, at
launch as well as later. `FileOpenReceiver` catches those events; Qt sends none on Linux or Windows, so
it is installed everywhere and only macOS ever feeds it.

Finder opens several selected files as one event each: they are handed on together, once no other one
has come for `BATCH_MS`, so that one import reports them all.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QCoreApplication, QEvent, QEventLoop, QObject, QTimer
from PySide6.QtGui import QFileOpenEvent

BATCH_MS = 100
"""Milliseconds without another file-open event before the files so far are handed on."""

LAUNCH_WAIT_MS = 2000
"""How long a second instance waits for the launch's file-open events before it hands them on: AppKit
sends them once the event loop runs (``application:openFiles:`` during ``finishLaunching``). Assumed
from Qt's and AppKit's documentation, never timed on a Mac."""


def opened_path(event: QFileOpenEvent) -> Path | None:
    """The local file an event names; None for a URL that is not a file (wgdesk declares none)."""
    name = event.file()
    if not name and event.url().isLocalFile():
        name = event.url().toLocalFile()
    return Path(name) if name else None


class FileOpenReceiver(QObject):
    """An event filter on the application that collects `QEvent.FileOpen` events and hands their files
    to one consumer (`deliver_to`); files that arrive before there is one are kept until there is.

    Args:
        app: the application whose events are watched.
    """

    def __init__(self, app: QCoreApplication) -> None:
        super().__init__()
        self._app = app
        self._pending: list[Path] = []
        self._consumer: Callable[[list[Path]], object] | None = None
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(BATCH_MS)
        self._timer.timeout.connect(self._flush)
        app.installEventFilter(self)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() != QEvent.Type.FileOpen or not isinstance(event, QFileOpenEvent):
            return False
        path = opened_path(event)
        if path is not None:
            self._pending.append(path)
            self._timer.start()
        return True  # handled: Qt's default would ignore it

    def deliver_to(self, consumer: Callable[[list[Path]], object] | None) -> None:
        """Hand the files opened from now on, and those kept so far, to ``consumer`` (None: keep them)."""
        self._consumer = consumer
        if consumer is not None and self._pending:
            self._timer.start()

    def wait(self, timeout_ms: int = LAUNCH_WAIT_MS) -> list[Path]:
        """Run the event loop until a batch of opened files has arrived or ``timeout_ms`` has passed,
        and return the files (empty when none came): what a second instance hands to the first."""
        received: list[Path] = []
        loop = QEventLoop()

        def take(files: list[Path]) -> None:
            received.extend(files)
            loop.quit()

        deadline = QTimer(loop)  # dies with the loop: no call into it after we return
        deadline.setSingleShot(True)
        deadline.timeout.connect(loop.quit)
        self.deliver_to(take)
        deadline.start(timeout_ms)
        loop.exec()
        self.deliver_to(None)
        return received

    def close(self) -> None:
        """Stop watching the application's events."""
        self._timer.stop()
        self._app.removeEventFilter(self)

    def _flush(self) -> None:
        if self._consumer is None or not self._pending:
            return
        files, self._pending = self._pending, []
        self._consumer(files)
