"""State events fanned out to the clients that subscribed (``subscribe``), each seeing only its own."""

from __future__ import annotations

import threading
from queue import Full, Queue
from typing import Any

Published = tuple[int | None, dict[str, Any]]
"""An event and the uid of the tunnel it is about (None: for everyone, e.g. lockdown)."""


class Events:
    """Fan-out of state events to subscribers; a subscriber that falls behind is dropped. Each event
    carries its tunnel's owner, so a subscriber is sent only what it may see (`ControlServer`)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queues: list[Queue[Published | None]] = []

    def subscribe(self) -> Queue[Published | None]:
        q: Queue[Published | None] = Queue(maxsize=256)
        with self._lock:
            self._queues.append(q)
        return q

    def unsubscribe(self, q: Queue[Published | None]) -> None:
        with self._lock:
            if q in self._queues:
                self._queues.remove(q)

    def publish(self, event: dict[str, Any], owner: int | None = None) -> None:
        """Send ``event`` to subscribers who may see tunnels of ``owner`` (None: to all)."""
        with self._lock:
            queues = list(self._queues)
        for q in queues:
            try:
                q.put_nowait((owner, event))
            except Full:
                self.unsubscribe(q)
                try:
                    q.get_nowait()
                    q.put_nowait(None)
                except Exception:
                    pass

    @property
    def count(self) -> int:
        with self._lock:
            return len(self._queues)
