"""The app collects Python's cyclic garbage on the UI thread only (wgdesk/app/collector.py): a Qt object
that becomes cyclic garbage while a worker thread allocates is destroyed later on the UI thread, never on
the worker."""

from __future__ import annotations

import gc
import threading
from typing import ClassVar

import pytest
from PySide6.QtCore import QObject

from wgdesk.app.collector import UiThreadCollector

pytestmark = pytest.mark.gui


class Cyclic(QObject):
    """A QObject kept alive only by a reference cycle; records the thread its Python side dies on."""

    died_on: ClassVar[list[str]] = []

    def __init__(self) -> None:
        super().__init__()
        self.me = self  # the cycle

    def __del__(self) -> None:
        Cyclic.died_on.append(threading.current_thread().name)


def _allocate_cycles() -> None:
    for _ in range(20 * gc.get_threshold()[0]):  # far past generation 0's threshold
        a: list[object] = []
        a.append(a)


def _garbage_then_worker() -> None:
    Cyclic.died_on.clear()
    Cyclic()  # unreachable at once, except through its own cycle
    worker = threading.Thread(target=_allocate_cycles, name="worker")
    worker.start()
    worker.join()


def test_without_it_the_worker_that_allocates_destroys_the_qt_object() -> None:
    # the hazard itself, as CPython behaves by default (so the next test can fail)
    gc.collect()
    assert gc.isenabled()
    _garbage_then_worker()
    assert Cyclic.died_on == ["worker"]


def test_with_it_the_ui_thread_destroys_the_qt_object_on_its_timer(qtbot) -> None:  # type: ignore[no-untyped-def]
    gc.collect()
    collector = UiThreadCollector(interval_ms=50)
    try:
        assert not gc.isenabled()
        _garbage_then_worker()
        assert Cyclic.died_on == []  # the worker allocated past every threshold and collected nothing
        qtbot.waitUntil(lambda: Cyclic.died_on != [], timeout=5000)
        assert Cyclic.died_on == [threading.main_thread().name]
    finally:
        collector.stop()
    assert gc.isenabled()
