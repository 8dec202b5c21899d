"""The path MTU test of a running tunnel (the doctor's "Test MTU"): the helper's ``probe_mtu``, seconds
long, on the worker."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from wgdesk.app.live_status import LiveStatus
from wgdesk.app.workers import ClientFactory, TaskRunner


class MtuProbe:
    """Asks the helper which packet sizes cross a tunnel, and with *apply* to lower its MTU to that."""

    def __init__(self, live: LiveStatus, runner: TaskRunner, client_factory: ClientFactory) -> None:
        self._live = live
        self._runner = runner
        self._client_factory = client_factory

    def probe(
        self,
        name: str,
        apply: bool,
        on_done: Callable[[dict[str, Any]], None],
        on_failed: Callable[[BaseException], None],
    ) -> None:
        """Probe the path MTU of the running *name* on a worker; with *apply* the helper also lowers the
        tunnel's MTU to what crosses (the status is refreshed then). Calls back on the UI thread."""
        client = self._client_factory

        def run() -> dict[str, Any]:
            with client() as c:
                return c.probe_mtu(name, apply=apply)

        def done(result: dict[str, Any]) -> None:
            if result.get("applied"):
                self._live.poll_now()
            on_done(result)

        self._runner.submit(run, done, on_failed)
