"""The suite's own guarantees: CI turns skips into failures; a hang ends the run with a stack."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _run_inner(tmp_path: Path, ci: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "conftest.py").write_text((ROOT / "tests" / "conftest.py").read_text())
    (tmp_path / "test_inner.py").write_text(
        textwrap.dedent(
            """
            import pytest

            def test_skipped():
                pytest.skip("dependency missing")
            """
        )
    )
    env = dict(os.environ, CI=ci)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-c", "/dev/null", str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )


def test_skip_fails_under_ci(tmp_path: Path) -> None:
    result = _run_inner(tmp_path, "true")
    assert result.returncode == 1, result.stdout
    assert "not allowed" in result.stdout


def test_skip_is_a_skip_outside_ci(tmp_path: Path) -> None:
    result = _run_inner(tmp_path, "")
    assert result.returncode == 0, result.stdout
    assert "1 skipped" in result.stdout


STUCK = """
import signal
import time

import pytest


@pytest.mark.timeout(1)
def test_slow_in_python():
    time.sleep(30)  # pytest-timeout's SIGALRM interrupts this: the test fails, the run goes on


def test_after_the_slow_one():
    pass


@pytest.mark.timeout(1)
def test_stuck_where_no_signal_handler_runs():
    # what a test stuck in C++ (a Qt modal loop, QThread.wait) looks like to Python: SIGALRM's handler
    # never runs
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
    time.sleep(60)


def test_never_reached():
    pass
"""


def test_a_hang_where_the_timeout_signal_cannot_land_ends_the_run_with_a_stack(tmp_path: Path) -> None:
    conftest = (ROOT / "tests" / "conftest.py").read_text()
    assert "HARD_STOP_GRACE = 60.0" in conftest
    (tmp_path / "conftest.py").write_text(conftest.replace("HARD_STOP_GRACE = 60.0", "HARD_STOP_GRACE = 2.0"))
    (tmp_path / "test_inner.py").write_text(STUCK)
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-v", "-p", "no:cacheprovider", "-c", "/dev/null", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=50,
    )
    elapsed = time.monotonic() - started
    assert result.returncode == 1
    assert elapsed < 40  # 1 s + 2 s for the stuck test, not its 60 s sleep
    assert "test_slow_in_python FAILED" in result.stdout
    assert "test_after_the_slow_one PASSED" in result.stdout
    assert "Timeout (0:00:03)!" in result.stderr  # the watchdog's dump, on the real stderr
    assert "in test_stuck_where_no_signal_handler_runs" in result.stderr
    assert "test_never_reached" not in result.stdout


BUDGETS = """
import time

import pytest


def test_quick_but_hung():
    time.sleep(5)


@pytest.mark.slow
def test_slow_and_legitimately_so():
    time.sleep(2)


@pytest.mark.timeout(4)
def test_with_its_own_timeout():
    time.sleep(2)
"""


def test_a_test_not_marked_slow_gets_the_short_timeout(tmp_path: Path) -> None:
    conftest = (ROOT / "tests" / "conftest.py").read_text()
    assert "NON_SLOW_TIMEOUT = 180.0" in conftest
    shortened = conftest.replace("NON_SLOW_TIMEOUT = 180.0", "NON_SLOW_TIMEOUT = 1.0")
    (tmp_path / "conftest.py").write_text(shortened)
    (tmp_path / "test_inner.py").write_text(BUDGETS)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-v",
            "-p",
            "no:cacheprovider",
            "-c",
            "/dev/null",
            "--timeout",
            "30",
            "--strict-markers",
            "-o",
            "markers=slow",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )
    assert "test_quick_but_hung FAILED" in result.stdout, result.stdout
    assert "Timeout (>1.0s)" in result.stdout
    assert "test_slow_and_legitimately_so PASSED" in result.stdout
    assert "test_with_its_own_timeout PASSED" in result.stdout
