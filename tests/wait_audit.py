"""Opt-in audit of the suite's waits, to find timing-fragile tests before CI does.

    WGDESK_WAIT_AUDIT=/tmp/waits.jsonl .venv/bin/python -m pytest -p tests.wait_audit tests/helper …
    .venv/bin/python -m tests.wait_audit /tmp/waits.jsonl       # the waits that used most of their timeout

Every `tests.netns.wait_for`, `qtbot.waitUntil`, `qtbot.waitSignal`/`waitSignals` and lab `Lab.ping` is
timed and written as one JSON line (test, kind, caller, elapsed, timeout, ok). A wait that used more than
half of its timeout is a near miss: on a slower or busier machine it is the next flake. A `Lab.ping` that
needed more than one attempt counts as one too (its timeout is attempts × the per-attempt window).

The plugin must load before the test modules import `wait_for` by name, hence ``-p`` (not a conftest).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

import pytest

OUT = Path(os.environ.get("WGDESK_WAIT_AUDIT", "wait-audit.jsonl"))
_test = {"id": ""}


def _caller() -> str:
    """file:line of the first frame outside this module and the libraries it wraps."""
    frame = sys._getframe(2)
    while frame is not None:
        name = frame.f_code.co_filename
        if "/tests/" in name and not name.endswith(("wait_audit.py", "netns.py")):
            return f"{Path(name).name}:{frame.f_lineno}"
        frame = frame.f_back  # type: ignore[assignment]
    return "?"


def _record(kind: str, where: str, elapsed: float, timeout: float, ok: bool, **extra: Any) -> None:
    entry = {
        "test": _test["id"],
        "kind": kind,
        "where": where,
        "elapsed": round(elapsed, 3),
        "timeout": timeout,
        "ok": ok,
        **extra,
    }
    with OUT.open("a") as f:
        f.write(json.dumps(entry) + "\n")


def _install() -> None:
    import tests.netns as netns

    original_wait_for = netns.wait_for

    def wait_for(predicate: object, timeout: float = 10.0, interval: float = 0.05) -> bool:
        where = _caller()
        started = time.monotonic()
        ok = original_wait_for(predicate, timeout, interval)
        _record("wait_for", where, time.monotonic() - started, timeout, ok)
        return ok

    netns.wait_for = wait_for  # type: ignore[assignment]

    try:
        from pytestqt.qtbot import QtBot
        from pytestqt.wait_signal import MultiSignalBlocker, SignalBlocker
    except ImportError:
        pass
    else:
        original_until = QtBot.waitUntil

        def wait_until(self: Any, callback: Callable[[], Any], *, timeout: int = 5000) -> None:
            where = _caller()
            started = time.monotonic()
            ok = False
            try:
                original_until(self, callback, timeout=timeout)
                ok = True
            finally:
                _record("waitUntil", where, time.monotonic() - started, timeout / 1000, ok)

        QtBot.waitUntil = wait_until  # type: ignore[method-assign]
        for cls, kind in ((SignalBlocker, "waitSignal"), (MultiSignalBlocker, "waitSignals")):
            original_wait = cls.wait

            def wait(self: Any, _original: Any = original_wait, _kind: str = kind) -> None:
                if not self._signals:  # qtbot.wait(ms), also waitUntil's polling: a pause, not a wait
                    _original(self)
                    return
                where = _caller()
                started = time.monotonic()
                try:
                    _original(self)
                finally:
                    timeout = (self.timeout or 0) / 1000
                    _record(_kind, where, time.monotonic() - started, timeout, bool(self.signal_triggered))

            cls.wait = wait  # type: ignore[method-assign]

    try:
        from tests.helper import lab
    except ImportError:  # pragma: no cover - the lab needs nothing special to import
        return
    original_ping = lab.Lab.ping

    def ping(self: Any, target: str, count: int = 1, timeout: float = 2.0, attempts: int = 3) -> bool:
        where = _caller()
        used = 0

        def counting_exec(*args: Any, **kw: Any) -> Any:
            nonlocal used
            if args and args[0] == "ping":
                used += 1
            return real_exec(*args, **kw)

        real_exec = self.client.exec
        self.client.exec = counting_exec
        started = time.monotonic()
        try:
            ok = original_ping(self, target, count, timeout, attempts)
        finally:
            del self.client.exec
        window = (count * 0.2 + timeout) * attempts
        _record("ping", where, time.monotonic() - started, window, ok, attempts=used, of=attempts)
        return ok

    lab.Lab.ping = ping  # type: ignore[method-assign]


_install()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Generator[None, None, None]:
    _test["id"] = item.nodeid
    yield
    _test["id"] = ""


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call" or report.outcome != "passed":
        with OUT.open("a") as f:
            f.write(
                json.dumps(
                    {"test": report.nodeid, "kind": "outcome", "when": report.when, "outcome": report.outcome}
                )
                + "\n"
            )


def near_misses(path: Path, share: float = 0.5) -> list[dict[str, Any]]:
    """The recorded waits that used more than ``share`` of their timeout or retried a ping, and those that
    failed in a test that failed. (A ping or `wait_for` that fails in a passing test was asserted to fail:
    "blocked" is what the test wanted; those are left out.)"""
    entries = [json.loads(line) for line in path.read_text().splitlines()]
    failed = {e["test"] for e in entries if e["kind"] == "outcome" and e["outcome"] == "failed"}
    found = []
    for e in entries:
        if e["kind"] == "outcome":
            continue
        retried = e["kind"] == "ping" and e.get("attempts", 1) > 1 and e["ok"]
        slow = e["ok"] and e["timeout"] and e["elapsed"] > share * e["timeout"]
        if retried or slow or (not e["ok"] and e["test"] in failed):
            found.append(e)
    return sorted(found, key=lambda e: -(e["elapsed"] / e["timeout"] if e["timeout"] else 0))


if __name__ == "__main__":
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    for e in near_misses(Path(sys.argv[1])):
        ratio = e["elapsed"] / e["timeout"] if e["timeout"] else 0
        extra = f" ping attempts {e['attempts']}/{e['of']}" if e["kind"] == "ping" else ""
        print(
            f"{ratio:5.0%} {e['elapsed']:7.2f}/{e['timeout']:<6g} {'ok ' if e['ok'] else 'FAIL'} "
            f"{e['kind']:<11} {e['where']:<28} {e['test']}{extra}"
        )
