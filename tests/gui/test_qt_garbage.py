"""Qt objects a GUI test leaves in reference cycles are destroyed on the UI thread before the next test
starts (tests/gui/conftest.py), not later by Python's cycle collector on whatever thread runs it."""

from __future__ import annotations

import threading
import weakref

import pytest

from wgdesk.app.controller import TunnelController

pytestmark = pytest.mark.gui

_left: dict[str, weakref.ref[TunnelController]] = {}


def test_1_a_controller_is_stopped_and_left_behind(controller: TunnelController) -> None:
    _left["controller"] = weakref.ref(controller)  # the fixture stops it; its own cycles keep it alive


def test_2_it_was_destroyed_before_the_next_test() -> None:
    # runs after test_1 (file order): by now its controller must be gone, destroyed on this thread
    assert "controller" in _left, "test_1 did not run first"
    assert _left["controller"]() is None
    assert threading.current_thread() is threading.main_thread()
