"""The path MTU test of a running tunnel (the doctor's "Test MTU"): the helper's ``probe_mtu``, seconds
long, on the worker."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from wgdesk.app.live_status import LiveStatus
from wgdesk.app.workers import HelperCalls


class MtuProbe:
    """Asks the helper which packet sizes cross a tunnel, and with *apply* to lower its MTU to that."""

    def __init__(self, live: LiveStatus, calls: HelperCalls) -> None:
        self._live = live
        self._calls = calls

    def probe(
        self,
        name: str,
        apply: bool,
        on_done: Callable[[dict[str, Any]], None],
        on_failed: Callable[[BaseException], None],
    ) -> None:
        """Probe the path MTU of the running *name* on a worker; with *apply* the helper also lowers the
        tunnel's MTU to what crosses (the status is refreshed then). Calls back on the UI thread."""

        def done(result: dict[str, Any]) -> None:
            if result.get("applied"):
                self._live.poll_now()
            on_done(result)

        self._calls.submit(lambda c: c.probe_mtu(name, apply=apply), done, on_failed)
