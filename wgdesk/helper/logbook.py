"""The helper's log: bounded in-memory records (served by the ``logs`` verb) that are also written to
stderr (the journal, under systemd).

Secrets never reach it: the helper logs no config text, and engine output passes `redact`, which
hides anything shaped like a whole WireGuard key (44 base64 characters or 64 hex digits).

Records belong to a user: those of a tunnel to the uid that brought it up (stamped when the record
is made, so a later tunnel of the same name does not inherit them), those a member's request caused
(a lockdown switch, a process moved) to that member, helper-wide ones to nobody.
Each owner has a ring of its own, so one member's chatty engine or failing requests cannot push
another member's records out; a member reads only their own ring, root and the administrator group
all of them (`records`). `Throttle` bounds what refused callers can write.
"""

from __future__ import annotations

import heapq
import logging
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

_KEYLIKE = re.compile(r"(?<![A-Za-z0-9+/])[A-Za-z0-9+/]{43}=|(?<![0-9a-fA-F])[0-9a-fA-F]{64}(?![0-9a-fA-F])")

log = logging.getLogger("wgdesk.helper")


def redact(text: str) -> str:
    return _KEYLIKE.sub("(key)", text)


class LogBook:
    """Thread-safe ring buffers of log records, one per owner (see the module docstring)."""

    def __init__(self, size: int = 4000) -> None:
        self.size = size
        self._rings: dict[int | None, deque[dict[str, Any]]] = {}
        self._owners: dict[str, int] = {}
        self._lock = threading.Lock()

    def own(self, tunnel: str, uid: int) -> None:
        """Records of ``tunnel`` made from now on belong to ``uid``."""
        with self._lock:
            self._owners[tunnel] = uid

    def disown(self, tunnel: str) -> None:
        """``tunnel`` is gone: its later records (an engine's last words) are helper-wide."""
        with self._lock:
            self._owners.pop(tunnel, None)

    def add(self, level: str, source: str, tunnel: str | None, message: str, uid: int | None = None) -> None:
        """Record ``message``; it belongs to ``uid`` when given, else to the owner of ``tunnel``."""
        message = redact(message)
        record = {"time": time.time(), "level": level, "source": source, "tunnel": tunnel, "message": message}
        with self._lock:
            owner = uid if uid is not None else self._owners.get(tunnel) if tunnel else None
            ring = self._rings.get(owner)
            if ring is None:
                ring = self._rings[owner] = deque(maxlen=self.size)
            ring.append(record)
        prefix = f"[{tunnel}] " if tunnel else ""
        python_level = getattr(logging, level.upper(), logging.INFO)
        if source == "engine":
            # the engine is verbose; the system log gets its errors, the `logs` verb everything
            python_level = logging.WARNING if message.startswith("ERROR") else logging.DEBUG
        log.log(
            python_level,
            "%s%s%s",
            prefix,
            "engine: " if source == "engine" else "",
            message,
        )

    def info(self, tunnel: str | None, message: str, uid: int | None = None) -> None:
        self.add("info", "helper", tunnel, message, uid)

    def warning(self, tunnel: str | None, message: str, uid: int | None = None) -> None:
        self.add("warning", "helper", tunnel, message, uid)

    def error(self, tunnel: str | None, message: str, uid: int | None = None) -> None:
        self.add("error", "helper", tunnel, message, uid)

    def records(
        self, tunnel: str | None = None, since: float | None = None, reader: int | None = None
    ) -> list[dict[str, Any]]:
        """Records, oldest first: all of them, or with ``reader`` (a uid) only that user's own."""
        with self._lock:
            if reader is None:
                rings = [list(r) for r in self._rings.values()]
            else:
                rings = [list(self._rings.get(reader, ()))]
        return [
            r
            for r in heapq.merge(*rings, key=lambda r: r["time"])
            if (tunnel is None or r["tunnel"] == tunnel) and (since is None or r["time"] > since)
        ]


class Throttle:
    """At most ``burst`` log records per ``key`` and ``per`` seconds (and ``total`` for all keys) —
    for what outsiders can make the helper log (refused connections and requests) — and notes that
    say when records were left out and how many."""

    def __init__(
        self,
        what: str,
        burst: int = 5,
        total: int = 20,
        per: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.what, self.burst, self.total, self.per, self.clock = what, burst, total, per, clock
        self._window = clock()
        self._counts: dict[object, int] = {}
        self._dropped = 0
        self._lock = threading.Lock()

    def check(self, key: object) -> tuple[bool, str | None]:
        """(whether to log this one, a note to log with it or instead of it, or None)."""
        with self._lock:
            now = self.clock()
            note = None
            if now - self._window >= self.per:
                if self._dropped:
                    note = f"{self._dropped} {self.what} not logged in the last {self.per:.0f} s"
                self._window, self._dropped = now, 0
                self._counts.clear()
            count = self._counts.get(key, 0)
            if count >= self.burst or sum(self._counts.values()) >= self.total:
                self._dropped += 1
                if self._dropped == 1:
                    note = f"further {self.what} not logged for up to {self.per:.0f} s"
                return False, note
            self._counts[key] = count + 1
            return True, note


class HelperNotes:
    """What the OS backend reports of its own accord (a mount, a restored file), as helper-wide
    records of the log book (a `wgdesk.platforms.interface.Notes`)."""

    def __init__(self, logbook: LogBook) -> None:
        self.logbook = logbook

    def info(self, message: str, uid: int | None = None) -> None:
        self.logbook.info(None, message, uid)

    def warning(self, message: str) -> None:
        self.logbook.warning(None, message)

    def error(self, message: str) -> None:
        self.logbook.error(None, message)
