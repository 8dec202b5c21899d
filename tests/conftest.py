"""Suite-wide rules.

* Under ``CI=true`` a skipped test is a failed test: a missing dependency must never turn
  into a silent green run.
* ``needs_root`` skips (and so, in CI, fails) tests that need root for namespaces and TUN.
* A hang fails fast with a stack. A test not marked ``slow`` (so expected to take well under 30 s)
  gets ``NON_SLOW_TIMEOUT`` instead of pyproject.toml's ``timeout`` (which stays for ``slow`` tests and
  a test's own ``@pytest.mark.timeout``). pytest-timeout fails the test at its timeout with SIGALRM,
  but that handler only runs when the main thread executes Python: a test stuck in C or C++ (a Qt
  modal loop, ``QThread.wait()``, a lock) never sees it. A faulthandler watchdog (a C thread, no GIL
  needed) therefore dumps every thread's stack and ends the run ``HARD_STOP_GRACE`` seconds after the
  timeout.
"""

from __future__ import annotations

import faulthandler
import os
import sys
from collections.abc import Generator

import pytest
import pytest_timeout

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
HARD_STOP_GRACE = 60.0
# the slowest test not marked slow took 24 s on a 2-core machine (--durations, Nov 2026): 180 s is a hang
NON_SLOW_TIMEOUT = 180.0


def item_timeout(item: pytest.Item) -> float:
    """The pytest-timeout timeout of ``item`` in seconds (0: none): its marker, else the run's setting."""
    marker = item.get_closest_marker("timeout")
    if marker is not None:
        value = marker.args[0] if marker.args else marker.kwargs.get("timeout")
        if value is not None:
            return float(value)
    return float(pytest_timeout.get_env_settings(item.config).timeout or 0)


_STDERR_FD = pytest.StashKey[int]()


def pytest_configure(config: pytest.Config) -> None:
    # the terminal's stderr, kept before tests run: during a test fd 2 is pytest's capture file, and what
    # the watchdog writes there would vanish with the process
    stream = sys.__stderr__ if sys.__stderr__ is not None else sys.stderr
    config.stash[_STDERR_FD] = os.dup(stream.fileno())


def pytest_unconfigure(config: pytest.Config) -> None:
    fd = config.stash.get(_STDERR_FD, None)
    if fd is not None:
        os.close(fd)
        del config.stash[_STDERR_FD]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Generator[None, None, None]:
    # setup, call and teardown together, as pytest-timeout times them (timeout_func_only is off); this
    # shares faulthandler's one timer with pytest's faulthandler_timeout, which this suite does not set
    timeout = item_timeout(item)
    if timeout > 0:
        stderr = item.config.stash[_STDERR_FD]
        faulthandler.dump_traceback_later(timeout + HARD_STOP_GRACE, exit=True, file=stderr)
    try:
        yield
    finally:
        if timeout > 0:
            faulthandler.cancel_dump_traceback_later()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, None, None]:
    outcome = yield
    report = outcome.get_result()
    if IN_CI and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped under CI=true, which is not allowed: {reason}"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    configured = float(pytest_timeout.get_env_settings(config).timeout or 0)
    if 0 < NON_SLOW_TIMEOUT < configured:  # never lengthens, and --timeout=0 (debugging) stays off
        for item in items:
            if item.get_closest_marker("timeout") is None and item.get_closest_marker("slow") is None:
                item.add_marker(pytest.mark.timeout(NON_SLOW_TIMEOUT))
    if os.geteuid() == 0:
        return
    skip_root = pytest.mark.skip(reason="needs root (network namespaces / TUN); run the suite with sudo")
    for item in items:
        if "root" in item.keywords:
            item.add_marker(skip_root)
