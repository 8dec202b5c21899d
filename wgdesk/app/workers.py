"""Running blocking work (helper calls, keyring access) off the UI thread.

Results come back only through queued signals, so every callback runs on the UI thread. Two kinds of worker:

* :class:`TaskRunner` — one-shot calls on a thread pool (connect, disconnect, import, logs, diagnose …),
  with :class:`HelperCalls` for the ones that are a request to the helper;
* :class:`StatusMonitor` — a thread that asks the helper for the status of all tunnels once a second
  (:class:`~wgdesk.app.live_status.LiveStatus` gives it the question).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from PySide6.QtCore import QObject, QRunnable, QThread, QThreadPool, Signal, Slot

from wgdesk.client import HelperClient

Callback = Callable[[Any], None]
ClientFactory = Callable[[], HelperClient]
"""Opens a fresh helper connection (one per worker task; use it as a context manager so it is closed)."""
T = TypeVar("T")


class _Runnable(QRunnable):
    def __init__(
        self, runner: TaskRunner, fn: Callable[[], Any], on_done: Callback | None, on_error: Callback | None
    ) -> None:
        super().__init__()
        self._runner = runner
        self._fn = fn
        self._on_done = on_done
        self._on_error = on_error

    def run(self) -> None:
        try:
            value = self._fn()
        except Exception as exc:  # handed to the UI thread, which decides what to show
            self._runner.delivered.emit(self._on_error, exc)
        else:
            self._runner.delivered.emit(self._on_done, value)


class TaskRunner(QObject):
    """Runs callables on a private thread pool and calls back on the thread that owns the runner."""

    delivered = Signal(object, object)  # (callback, value); queued to the owner's thread
    idle = Signal()  # emitted when the last task in flight has called back

    def __init__(self, parent: QObject | None = None, max_threads: int = 4) -> None:
        super().__init__(parent)
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(max_threads)
        self._in_flight = 0
        self._closed = False
        self.delivered.connect(self._deliver)

    def submit(
        self, fn: Callable[[], Any], on_done: Callback | None = None, on_error: Callback | None = None
    ) -> None:
        """Run *fn()* on a worker; then ``on_done(result)`` or ``on_error(exception)`` on this thread.

        After :meth:`shutdown` nothing is run any more."""
        if self._closed:
            return
        self._in_flight += 1
        self._pool.start(_Runnable(self, fn, on_done, on_error))

    @property
    def busy(self) -> bool:
        """Whether any task has not called back yet."""
        return self._in_flight > 0

    @Slot(object, object)
    def _deliver(self, callback: Callback | None, value: object) -> None:
        if self._closed:
            return  # the UI is going away: a late result has nobody to tell
        self._in_flight -= 1
        try:
            if callback is not None:
                callback(value)
        finally:
            if self._in_flight == 0:
                self.idle.emit()

    def shutdown(self, timeout_ms: int = 5000) -> None:
        """Wait for running tasks (they cannot be interrupted) and drop queued ones.

        Afterwards the runner is not busy, results still on their way are not delivered, and
        :meth:`submit` does nothing."""
        self._closed = True
        self._pool.clear()
        self._pool.waitForDone(timeout_ms)
        was_busy = self._in_flight > 0
        self._in_flight = 0
        if was_busy:
            self.idle.emit()


class HelperCalls:
    """Requests to the helper off the UI thread: each on a fresh connection, closed afterwards, as a task of
    the shared :class:`TaskRunner` (so that waiting for the runner to go idle waits for them too)."""

    def __init__(self, runner: TaskRunner, client_factory: ClientFactory) -> None:
        self.runner = runner
        self.client = client_factory
        """Opens a fresh connection (for a task that does more than one request, or no request at all)."""

    def submit(
        self,
        request: Callable[[HelperClient], T],
        on_done: Callback | None = None,
        on_error: Callback | None = None,
    ) -> None:
        """Run ``request(client)`` on a worker; then ``on_done(answer)`` or ``on_error(exception)`` on the
        runner's thread. *request* may also do other blocking work first (read the keyring)."""
        client = self.client

        def run() -> T:
            with client() as c:
                return request(c)

        self.runner.submit(run, on_done, on_error)


class StatusMonitor(QThread):
    """Calls *poll* every *interval* seconds; reports its answer or why the helper is unreachable."""

    polled = Signal(object)  # what *poll* returned (the helper's status)
    helperFailed = Signal(object)  # the exception (HelperUnavailable, HelperPermissionDenied, …)

    def __init__(
        self, poll: Callable[[], object], interval: float = 1.0, parent: QObject | None = None
    ) -> None:
        super().__init__(parent)
        self._poll = poll
        self._interval = interval
        self._stop = threading.Event()
        self._wake = threading.Event()

    def run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                answer = self._poll()
            except Exception as exc:
                self.helperFailed.emit(exc)
            else:
                self.polled.emit(answer)
            self._wake.wait(max(0.05, self._interval - (time.monotonic() - started)))
            self._wake.clear()

    def poll_now(self) -> None:
        """Ask again without waiting for the next tick (after connect/disconnect)."""
        self._wake.set()

    def stop(self) -> None:
        """Stop the loop and wait for the thread to end."""
        self._stop.set()
        self._wake.set()
        self.wait(5000)
