"""Which changes of a tunnel's health the user is told about.

Pure bookkeeping (no Qt, no clock): the caller observes the health of every tunnel on each status report and
turns the returned :class:`Change` records into notifications. The rules:

* DOWN, STARTING or WAITING -> HEALTHY: *connected*.
* anything else -> DOWN: *disconnected*.
* anything -> ERROR: *failed*.
* A tunnel something else is bringing up or taking down (a network rule) can carry an :class:`Announcement`
  for the health it is heading for: reaching it says the announcement instead of the plain words above;
  reaching DOWN or ERROR instead drops it (it did not get where it was sent).
* A tunnel that is DOWN and not reported is forgotten; after :meth:`Transitions.forget_health` (the helper is
  out of reach) nothing is said about tunnels that cannot be seen.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from wgdesk.app.state import Health


class Outcome(enum.Enum):
    """What a change means to the user."""

    CONNECTED = "connected"
    DISCONNECTED = "disconnected"
    FAILED = "failed"
    ANNOUNCED = "announced"  # reached the health an announcement was waiting for


@dataclass(frozen=True)
class Announcement:
    """What to say, instead of the plain words, when a tunnel reaches *heading*."""

    heading: Health
    title: str
    text: str


@dataclass(frozen=True)
class Change:
    """One change worth telling: the tunnel, what it means, and the announcement it fulfilled (if any)."""

    name: str
    outcome: Outcome
    announcement: Announcement | None = None


class Transitions:
    """The last health told about per tunnel, and the announcements waiting."""

    def __init__(self) -> None:
        self._health: dict[str, Health] = {}
        self._announce: dict[str, Announcement] = {}

    def announce(self, name: str, announcement: Announcement) -> None:
        """Say *announcement* when *name* reaches its heading (replaces an earlier one)."""
        self._announce[name] = announcement

    def withdraw(self, name: str) -> None:
        """Drop the announcement of *name* (what it announced failed)."""
        self._announce.pop(name, None)

    def forget_health(self) -> None:
        """Forget every health told (announcements stay)."""
        self._health.clear()

    def observe(self, reported: Iterable[str], health_of: Callable[[str], Health]) -> list[Change]:
        """One status report: *reported* names the tunnels it lists, *health_of* gives each one's health.
        Returns the changes to tell, sorted by tunnel name."""
        changes: list[Change] = []
        for name in sorted(set(reported) | set(self._health)):
            new = health_of(name)
            old = self._health.get(name, Health.DOWN)
            if new == old:
                continue
            self._health[name] = new
            waiting = self._announce.get(name)
            if waiting is not None and new == waiting.heading:
                del self._announce[name]
                changes.append(Change(name, Outcome.ANNOUNCED, waiting))
                continue
            if new in (Health.DOWN, Health.ERROR):
                self._announce.pop(name, None)
            if new == Health.HEALTHY and old in (Health.DOWN, Health.STARTING, Health.WAITING):
                changes.append(Change(name, Outcome.CONNECTED))
            elif new == Health.DOWN:
                changes.append(Change(name, Outcome.DISCONNECTED))
            elif new == Health.ERROR:
                changes.append(Change(name, Outcome.FAILED))
        for name in [n for n, h in self._health.items() if h == Health.DOWN]:
            del self._health[name]
        return changes
