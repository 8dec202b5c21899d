"""Following network changes on macOS for the helper: ``route -n monitor`` in a thread, and when a
message may have moved the default route (`routes.RouteMonitor`), the actions that keep a tunnel
right: move the endpoint host routes to the new gateway, write the tunnel's DNS again where configd
replaced it. A burst of messages (a Wi-Fi join sends dozens) runs the actions once, after half a
second of quiet.

Started by the backend the first time a full tunnel or tunnel DNS is set, never in the app or the
engine (which use the same backend class).
"""

from __future__ import annotations

import logging
import os
import selectors
import subprocess
import threading
from collections.abc import Callable, Iterable, Sequence

from wgdesk.platforms.darwin.routes import RouteMonitor
from wgdesk.platforms.darwin.runner import CLEAN_ENV, ROUTE

QUIET = 0.5
"""Seconds without a routing message before the actions run."""

log = logging.getLogger(__name__)


class NetworkWatch:
    """Runs ``actions`` after each burst of relevant routing messages."""

    def __init__(
        self, actions: Sequence[Callable[[], object]], argv: Sequence[str] = (ROUTE, "-n", "monitor")
    ) -> None:
        self.actions = list(actions)
        self.argv = list(argv)
        self.monitor = RouteMonitor()
        self.runs = 0
        self._thread: threading.Thread | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._stop = threading.Event()

    def follow(self, lines: Iterable[str]) -> None:
        """Feed ``lines`` (no waiting): the actions run once per relevant message (tests)."""
        for line in lines:
            if self.monitor.feed(line):
                self.run_actions()

    def run_actions(self) -> None:
        self.runs += 1
        for action in self.actions:
            try:
                action()
            except Exception:  # a failed re-apply is logged; the next change tries again
                log.exception("re-applying after a network change failed")

    def start(self) -> None:
        """Start following (once); harmless when ``route`` cannot be started (logged)."""
        if self._thread is not None:
            return
        try:
            self._proc = subprocess.Popen(
                self.argv, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, env=dict(CLEAN_ENV)
            )
        except OSError as exc:
            log.warning("cannot follow network changes (%s): endpoint routes stay where they are", exc)
            return
        self._thread = threading.Thread(target=self._run, name="wgdesk-netwatch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        fd = self._proc.stdout.fileno()
        selector = selectors.DefaultSelector()
        selector.register(fd, selectors.EVENT_READ)
        pending = False
        partial = b""
        while not self._stop.is_set():
            if not selector.select(QUIET if pending else None):
                pending = False  # quiet after a burst
                self.run_actions()
                continue
            data = os.read(fd, 65536)
            if not data:
                return
            *lines, partial = (partial + data).split(b"\n")
            for line in lines:
                pending = self.monitor.feed(line.decode("utf-8", "replace")) or pending

    def stop(self) -> None:
        self._stop.set()
        if self._proc is not None:
            self._proc.terminate()
            self._proc.wait(5)
