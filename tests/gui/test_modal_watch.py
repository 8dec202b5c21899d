"""The GUI suite's guard against a modal dialog nobody answers (tests/gui/conftest.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from PySide6.QtCore import QTimer

from tests.gui.conftest import ModalWatch
from wgdesk.app import dialogs

pytestmark = pytest.mark.gui

ROOT = Path(__file__).resolve().parents[2]


def test_a_dialog_left_open_is_closed_and_named(qtbot) -> None:  # type: ignore[no-untyped-def]
    watch = ModalWatch(patience=0.5)
    answers: list[object] = []
    QTimer.singleShot(0, lambda: answers.append(dialogs.warn(None, "Forgotten", "nobody reads this")))
    qtbot.waitUntil(lambda: bool(answers), timeout=10000)  # exec() returned: the watch closed the box
    watch.stop()
    assert watch.closed == ["QMessageBox 'Forgotten': 'nobody reads this'"]


def test_a_dialog_answered_in_time_is_not_reported(qtbot) -> None:  # type: ignore[no-untyped-def]
    from PySide6.QtWidgets import QApplication, QMessageBox

    watch = ModalWatch(patience=2.0)
    answers: list[object] = []

    def answer() -> None:
        box = QApplication.activeModalWidget()
        if box is None:
            QTimer.singleShot(50, answer)
            return
        assert isinstance(box, QMessageBox)
        box.accept()

    QTimer.singleShot(0, lambda: answers.append(dialogs.warn(None, "Answered", "read in time")))
    QTimer.singleShot(500, answer)
    qtbot.waitUntil(lambda: bool(answers), timeout=10000)
    qtbot.wait(2500)  # past the patience: a stale timestamp would report the closed box now
    watch.stop()
    assert watch.closed == []


INNER = """
import tests.gui.conftest as gui
from wgdesk.app import dialogs

gui.MODAL_PATIENCE = 1.0


def test_forgets_a_dialog(qtbot):
    dialogs.warn(None, "Unsaved changes", "Save your changes to office?")


def test_next():
    pass
"""


def test_the_test_that_left_it_open_fails_and_the_run_goes_on(tmp_path: Path) -> None:
    (tmp_path / "test_inner.py").write_text(textwrap.dedent(INNER))
    started = time.monotonic()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-v",
            "-p",
            "no:cacheprovider",
            "-p",
            "tests.gui.conftest",
            "-c",
            "/dev/null",
            "--rootdir",
            str(tmp_path),
            str(tmp_path / "test_inner.py"),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=120,
    )
    assert time.monotonic() - started < 60
    assert result.returncode == 1, result.stdout + result.stderr
    assert "test_forgets_a_dialog FAILED" in result.stdout
    assert "test_next PASSED" in result.stdout
    assert (
        "a modal dialog nobody answered stayed open 1 s and was closed: "
        "QMessageBox 'Unsaved changes': 'Save your changes to office?'"
    ) in result.stdout
