"""TaskRunner: results come back on the UI thread; shutdown drops queued work and leaves nothing busy."""

from __future__ import annotations

import threading

from PySide6.QtCore import QThread

from wgdesk.app.workers import TaskRunner


def test_results_and_errors_come_back_on_the_ui_thread(qtbot) -> None:  # type: ignore[no-untyped-def]
    runner = TaskRunner()
    got: list[tuple[str, object, bool]] = []
    ui = QThread.currentThread()

    def boom() -> None:
        raise ValueError("bad")

    with qtbot.waitSignal(runner.idle, timeout=5000):
        runner.submit(lambda: 6 * 7, lambda v: got.append(("done", v, QThread.currentThread() is ui)))
        runner.submit(boom, on_error=lambda e: got.append(("error", str(e), QThread.currentThread() is ui)))
        assert runner.busy
    assert sorted(got) == [("done", 42, True), ("error", "bad", True)]
    assert not runner.busy


def test_shutdown_drops_queued_tasks_and_is_not_busy_afterwards(qtbot) -> None:  # type: ignore[no-untyped-def]
    runner = TaskRunner(max_threads=1)
    release = threading.Event()
    ran: list[str] = []
    called: list[str] = []

    def blocking() -> str:
        ran.append("first")
        release.wait(5)
        return "first"

    runner.submit(blocking, called.append)
    qtbot.waitUntil(lambda: ran == ["first"], timeout=5000)
    runner.submit(lambda: ran.append("queued"), called.append)
    runner.submit(lambda: ran.append("queued too"), called.append)
    threading.Timer(0.2, release.set).start()
    with qtbot.waitSignal(runner.idle, timeout=5000):
        runner.shutdown()
    assert ran == ["first"]  # the running task finished, the queued ones never started
    assert not runner.busy
    runner.submit(lambda: ran.append("after"), called.append)
    qtbot.wait(200)  # let any late delivery through the event loop
    assert ran == ["first"] and called == [] and not runner.busy
