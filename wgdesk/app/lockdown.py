"""Lockdown as the app sees it: the helper's state, the pause countdown, and turning it on, off, pausing and
resuming.

The state arrives with every status poll (``LiveStatus.lockdownPolled``) and with the answer to each verb; a
poll that asked before the latest verb answered is older news than that answer and is ignored. When a pause
ends by itself the user is told that lockdown blocks again; not when it ends because the user resumed, turned
lockdown on or off here.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, Signal, Slot

from wgdesk.app.live_status import LiveStatus
from wgdesk.app.notices import Notices
from wgdesk.app.workers import HelperCalls
from wgdesk.client import PAUSE_SECONDS, HelperClient, HelperUnavailable, pause_left


class Lockdown(QObject):
    """The helper's lockdown state and its verbs (on the worker); emits ``changed``."""

    changed = Signal()  # the helper's lockdown state (or whether it is known) changed

    def __init__(
        self,
        live: LiveStatus,
        calls: HelperCalls,
        notices: Notices,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._live = live
        self._calls = calls
        self._notices = notices
        # {"enabled", "policy", "paused_until", "pause_max"}; None: not known (no helper, or one that
        # predates lockdown)
        self._state: dict[str, Any] | None = None
        self._set_at = 0.0
        """Monotonic time the latest verb answered (polls that asked earlier are ignored)."""
        self._ending_pause = 0
        """Verbs of this app under way that end a pause (resume, on, off): a pause they end is not
        announced, even when a status poll brings the news before their answer."""
        live.lockdownPolled.connect(self._on_polled)
        live.helperLost.connect(self._on_helper_lost)

    # -- reading -------

    def state(self) -> dict[str, Any] | None:
        """The helper's lockdown: ``{"enabled": bool, "policy": "user"|"always"|"never",
        "paused_until": Unix time | None, "pause_max": seconds}``, or None when it is not known (the
        helper cannot be reached, or predates lockdown)."""
        return self._state

    def blocking(self) -> bool:
        """Whether lockdown blocks all traffic right now: it is on, not paused, and no tunnel is up."""
        if not (self._state and self._state.get("enabled")):
            return False
        if self.pause_left() is not None:
            return False
        return not self._live.any_up()

    def pause_left(self) -> float | None:
        """Seconds left of a lockdown pause, or None when none runs (or lockdown is not known)."""
        return pause_left(self._state) if self._state else None

    def pause_seconds(self) -> int:
        """How long the app pauses lockdown: 2 minutes, or the administrator's maximum if shorter
        (0: pausing is not allowed, or lockdown is not known)."""
        most = self._state.get("pause_max") if self._state else None
        if isinstance(most, bool) or not isinstance(most, int) or most <= 0:
            return 0
        return min(PAUSE_SECONDS, most)

    def pausable(self) -> bool:
        """Whether the app offers to pause lockdown: it blocks now and the administrator allows it."""
        return self.blocking() and self.pause_seconds() > 0

    # -- verbs -------

    def pause(self) -> None:
        """Pause lockdown for `pause_seconds` (a Wi-Fi login page), on the worker; emits ``changed`` with
        the answer, or fails on the notices channel."""
        seconds = self.pause_seconds()
        self._call(
            lambda c: c.pause_lockdown(seconds), self.tr("Could not pause lockdown"), user_resumed=False
        )

    def resume(self) -> None:
        """End a lockdown pause now, on the worker."""
        self._call(lambda c: c.resume_lockdown(), self.tr("Could not resume lockdown"), user_resumed=True)

    def set_enabled(self, enabled: bool) -> None:
        """Turn the helper's lockdown on or off, on the worker; emits ``changed`` with the answer, or fails
        on the notices channel (e.g. the administrator forces it)."""
        title = self.tr("Could not turn lockdown on") if enabled else self.tr("Could not turn lockdown off")
        self._call(lambda c: c.set_lockdown(enabled), title, user_resumed=True)

    def _call(self, call: Callable[[HelperClient], dict[str, Any]], failure: str, user_resumed: bool) -> None:
        """Run a lockdown verb on the worker; its answer becomes the known state. ``user_resumed``:
        a pause this answer ends was ended by the user here (no "pause ended" notification)."""

        def done(state: object) -> None:
            self._set_at = time.monotonic()
            if isinstance(state, dict):
                self._take(state, quiet=user_resumed)
            if user_resumed:
                self._ending_pause -= 1
            self._live.poll_now()

        def refused(exc: BaseException) -> None:
            if user_resumed:
                self._ending_pause -= 1
            if isinstance(exc, HelperUnavailable):
                self._live.set_helper_problem(exc)
            self._notices.fail(failure, str(exc))
            self._live.poll_now()

        if user_resumed:
            self._ending_pause += 1
        self._calls.submit(call, done, refused)

    # -- news -------

    @Slot(float, object)
    def _on_polled(self, asked: float, state: object) -> None:
        if asked > self._set_at:
            self._take(state if isinstance(state, dict) else None)

    @Slot()
    def _on_helper_lost(self) -> None:
        self._take(None)

    def _take(self, state: dict[str, Any] | None, quiet: bool = False) -> None:
        if state == self._state:
            return
        was_paused = self._state is not None and self._state.get("paused_until") is not None
        self._state = dict(state) if state is not None else None
        if (
            was_paused
            and not quiet
            and not self._ending_pause
            and state is not None
            and state.get("enabled")
            and state.get("paused_until") is None
        ):
            self._notices.tell(
                self.tr("Lockdown is back on"),
                self.tr(
                    "The pause has ended: nothing leaves this computer except through a connected tunnel."
                ),
            )
        self.changed.emit()
