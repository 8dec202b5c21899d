"""The helper's live view of the tunnels: polled once a second, turned into health, rates and notifications.

A :class:`~wgdesk.app.workers.StatusMonitor` thread asks the helper for the status of all tunnels (and its
lockdown state) on one connection it keeps open; each answer arrives here as a :class:`Poll` through a queued
signal. From it :class:`LiveStatus` keeps the status per tunnel, the traffic history, which tunnels are on
their way up, and whether the helper can be used at all (and what to tell the user when not).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QObject, Signal, Slot

from wgdesk.app.advice import helper_advice, helper_headline, helper_unusable
from wgdesk.app.notices import Notice, Notices
from wgdesk.app.state import Health, IconState, health, icon_state, is_active
from wgdesk.app.traffic import Sample, TrafficHistory
from wgdesk.app.transitions import Announcement, Change, Outcome, Transitions
from wgdesk.app.workers import ClientFactory, StatusMonitor
from wgdesk.client import HelperClient, HelperError
from wgdesk.snapshots import TunnelSnapshot


@dataclass(frozen=True)
class Poll:
    """One answer of the status poll: the tunnels, the lockdown state (None: the helper predates lockdown)
    and the monotonic time the poll asked."""

    tunnels: list[TunnelSnapshot]
    lockdown: dict[str, Any] | None
    asked: float


class LiveStatus(QObject):
    """The helper's status of every tunnel and whether the helper answers; emits what changed."""

    statusChanged = Signal()  # new live status (once a second while the helper answers), or a tunnel pending
    helperProblemChanged = Signal(str)  # "" when the helper answers, else how to fix it
    lockdownPolled = Signal(float, object)  # (monotonic time the poll asked, the helper's lockdown or None)
    helperLost = Signal()  # the helper cannot be reached: what it reported is unknown now
    reportReceived = Signal()  # a status report was taken over (emitted just before its statusChanged)

    def __init__(
        self,
        client_factory: ClientFactory,
        notices: Notices,
        parent: QObject | None = None,
        poll_interval: float = 1.0,
    ) -> None:
        super().__init__(parent)
        self._client_factory = client_factory
        self._notices = notices
        self._status: dict[str, TunnelSnapshot] = {}
        self._pending: set[str] = set()
        self._waiting_since: dict[str, float] = {}  # name -> Unix time first seen waiting for a handshake
        self._traffic = TrafficHistory()
        self._transitions = Transitions()
        self._helper_problem = ""
        self._helper_headline = ""
        self._received = False
        self._monitor_client: HelperClient | None = None  # used only on the monitor's thread
        self._monitor = StatusMonitor(self._poll, poll_interval, self)
        self._monitor.polled.connect(self._on_poll)
        self._monitor.helperFailed.connect(self._on_helper_failed)

    # -- lifecycle -------

    def start(self) -> None:
        """Start polling."""
        self._monitor.start()

    def stop(self) -> None:
        """Stop polling and wait for the thread; close its connection."""
        self._monitor.stop()
        if self._monitor_client is not None:
            self._monitor_client.close()
            self._monitor_client = None

    def poll_now(self) -> None:
        """Refresh the status without waiting for the next tick."""
        self._monitor.poll_now()

    # -- reading -------

    @property
    def status_received(self) -> bool:
        """Whether the helper has answered a status poll yet (before, which tunnels are up is unknown)."""
        return self._received

    def status(self, name: str) -> TunnelSnapshot | None:
        """The helper's latest status of *name*, None when it is not up."""
        return self._status.get(name)

    def is_up(self, name: str) -> bool:
        """Whether the helper lists *name* (in any state)."""
        return name in self._status

    def reported(self) -> list[str]:
        """The tunnels the helper lists, sorted."""
        return sorted(self._status)

    def any_up(self) -> bool:
        """Whether any tunnel is in state ``up``."""
        return any(t.state == "up" for t in self._status.values())

    def history(self, name: str, peer: str) -> list[Sample]:
        """(monotonic time, rx bytes, tx bytes) samples of one peer over the last minutes, oldest first."""
        return self._traffic.samples(name, peer)

    def health(self, name: str) -> Health:
        """The tunnel's health (see :mod:`wgdesk.app.state`)."""
        return health(self._status.get(name), time.time(), name in self._pending)

    def waiting_since(self, name: str) -> float | None:
        """Unix time since which *name* is up without a first handshake (None: it is not waiting)."""
        return self._waiting_since.get(name)

    def active(self) -> list[str]:
        """Tunnels that are up or coming up."""
        names = set(self._status) | self._pending
        return sorted(n for n in names if is_active(self.health(n)))

    def icon_state(self) -> IconState:
        """The tray icon for all tunnels together."""
        # a tunnel neither up nor pending is down, which changes no icon: the store need not be listed
        names = set(self._status) | self._pending
        return icon_state([self.health(n) for n in names], bool(self._helper_problem))

    @property
    def helper_problem(self) -> str:
        """Why the helper cannot be used and how to fix it; "" when it answers."""
        return self._helper_problem

    @property
    def helper_headline(self) -> str:
        """A short form of :attr:`helper_problem` for the tray menu and tooltip."""
        return self._helper_headline

    # -- what the other parts tell it -------

    def mark_pending(self, name: str) -> None:
        """*name* was asked to come up: it counts as starting until the helper lists it (see
        :meth:`changed`)."""
        self._pending.add(name)

    def drop_pending(self, name: str) -> None:
        """*name* is no longer on its way up (it failed, or it is being taken down)."""
        self._pending.discard(name)

    def changed(self) -> None:
        """Emit ``statusChanged`` so that views redraw (after :meth:`mark_pending`, :meth:`drop_pending`)."""
        self.statusChanged.emit()

    def announce(self, name: str, heading: Health, title: str, text: str) -> None:
        """Say *title* / *text* instead of "Connected" / "Disconnected" when *name* reaches *heading*."""
        self._transitions.announce(name, Announcement(heading, title, text))

    def withdraw(self, name: str) -> None:
        """Drop what :meth:`announce` said for *name* (getting there failed)."""
        self._transitions.withdraw(name)

    def set_helper_problem(self, exc: BaseException | None) -> None:
        """The helper cannot be used because of *exc* (None: it answers again); the first problem is also
        a notification."""
        text = helper_advice(exc) if exc is not None else ""
        self._helper_headline = helper_headline(exc) if exc is not None else ""
        if text != self._helper_problem:
            if text and not self._helper_problem:
                self._notices.tell(self._helper_headline, text, Notice.ERROR)
            self._helper_problem = text
            self.helperProblemChanged.emit(text)

    # -- the poll -------

    def _poll(self) -> Poll:
        """On the monitor's thread: one connection, kept open between polls; dropped after any failure."""
        if self._monitor_client is None:
            self._monitor_client = self._client_factory()
        try:
            asked = time.monotonic()
            tunnels = self._monitor_client.status()
            try:
                lockdown: dict[str, Any] | None = self._monitor_client.lockdown()
            except HelperError as e:
                if e.code != "unsupported":
                    raise
                lockdown = None
            return Poll(tunnels, lockdown, asked)
        except Exception:
            self._monitor_client.close()
            self._monitor_client = None
            raise

    @Slot(object)
    def _on_poll(self, poll: Poll) -> None:
        self._received = True
        self._status = {t.name: t for t in poll.tunnels if t.name}
        self._traffic.record(self._status, time.monotonic())
        self._pending -= set(self._status)
        self.set_helper_problem(None)
        self.lockdownPolled.emit(poll.asked, poll.lockdown)
        now = time.time()
        self._waiting_since = {
            n: self._waiting_since.get(n, now)
            for n, t in self._status.items()
            if health(t, now) == Health.WAITING
        }
        changes = self._transitions.observe(
            self._status, lambda n: health(self._status.get(n), now, n in self._pending)
        )
        for change in changes:
            self._tell(change)
        self.reportReceived.emit()
        self.statusChanged.emit()

    @Slot(object)
    def _on_helper_failed(self, exc: BaseException) -> None:
        if not helper_unusable(exc):
            return  # a slow or refused status request: keep the last known state, ask again next tick
        self._status = {}
        self._waiting_since = {}
        self._traffic.clear()
        self._transitions.forget_health()  # unknown now; no "disconnected" notices for tunnels we cannot see
        self.set_helper_problem(exc)
        self.helperLost.emit()
        self.statusChanged.emit()

    def _tell(self, change: Change) -> None:
        name = change.name
        if change.outcome == Outcome.ANNOUNCED and change.announcement is not None:
            self._notices.tell(change.announcement.title, change.announcement.text)
        elif change.outcome == Outcome.CONNECTED:
            self._notices.tell(self.tr("Connected"), self.tr("{name} is connected.").format(name=name))
        elif change.outcome == Outcome.DISCONNECTED:
            self._notices.tell(self.tr("Disconnected"), self.tr("{name} is disconnected.").format(name=name))
        elif change.outcome == Outcome.FAILED:
            self._notices.tell(
                self.tr("Tunnel error"), self.tr("{name} failed.").format(name=name), Notice.ERROR
            )
