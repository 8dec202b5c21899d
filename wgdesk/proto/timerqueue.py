"""The device's queue of per-peer timer deadlines: `get_timer` and `handle_timer` in O(log n).

Each peer's next deadline is the earliest of its `Timers`. Scanning every peer after each batch
costs O(peers); instead the code that may change a peer's timers *touches* the peer, and the queue
recomputes the next deadline of touched peers only, keeping a binary heap of (deadline, entry
number, peer) entries with lazy deletion:

* An entry is live if its number is the one the peer's `Timers.queue_entry` holds; other entries
  are skipped when they surface. A peer has at most one live entry.
* A live entry's deadline is a lower bound of the peer's next deadline. A touched peer gets a new
  entry only when its deadline comes earlier (or it had none); a deadline that moved later (the
  common case: data keeps pushing keepalive deadlines forward) is noticed when the old entry
  surfaces, and re-queued then.
* A peer without a live entry has no deadline, unless it was touched since the queue last looked.
* Each look first recomputes the deadline of the touched peers (`Timers.settled_deadline`); an
  untouched peer's deadline is what it was then, so the entries that surface are checked against
  that value without recomputing it.

So with k peers touched between two looks, `earliest()` costs O(k log n) and `pop_due()` O((k +
due) log n). Dead entries are purged once they outnumber the live ones (amortised O(1) each).
"""

from __future__ import annotations

import heapq
from typing import Generic, Protocol, TypeVar

from wgdesk.proto.timers import Timers


class HasTimers(Protocol):
    """What the queue schedules: anything holding a `Timers` (a `Peer`)."""

    @property
    def timers(self) -> Timers: ...


T = TypeVar("T", bound=HasTimers)

_PURGE_SLACK = 64


class TimerQueue(Generic[T]):
    """Deadlines of many owners (peers); see the module docstring for the invariants.

    The caller's obligation: `touch(owner)` whenever the owner's timers may have changed, before the
    next `earliest()` or `pop_due()`; `discard(owner)` when it is removed for good.
    """

    __slots__ = ("_heap", "_live", "_number", "touched")

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, T]] = []
        self._live = 0
        self._number = 0
        self.touched: set[T] = set()
        """Owners whose timers may have changed since the queue last looked (add to it directly on
        hot paths; `touch` is the same)."""

    def touch(self, owner: T) -> None:
        """The owner's timers may have changed."""
        self.touched.add(owner)

    def discard(self, owner: T) -> None:
        """Forget the owner for good: it is never scheduled again, even if touched."""
        timers = owner.timers
        if timers.queue_entry > 0:
            self._live -= 1
        timers.queue_entry = -1
        timers.queued_deadline = None
        self.touched.discard(owner)

    def earliest(self) -> float | None:
        """The earliest deadline of all owners, or None if none is armed."""
        self._settle()
        heap = self._heap
        while heap:
            deadline, number, owner = heap[0]
            timers = owner.timers
            if timers.queue_entry != number:
                heapq.heappop(heap)
                continue
            actual = timers.settled_deadline
            if actual == deadline:
                return deadline
            self._requeue(actual, owner)
        return None

    def pop_due(self, now: float) -> list[T]:
        """The owners with a deadline at or before `now`, in creation order (`Timers.order`).

        They leave the queue and are marked touched: the caller runs their timers, and the next
        look re-queues them.
        """
        self._settle()
        heap = self._heap
        due: list[T] = []
        while heap and heap[0][0] <= now:
            _, number, owner = heap[0]
            timers = owner.timers
            if timers.queue_entry != number:
                heapq.heappop(heap)
                continue
            actual = timers.settled_deadline
            if actual is not None and actual <= now:
                heapq.heappop(heap)
                self._live -= 1
                timers.queue_entry = 0
                timers.queued_deadline = None
                due.append(owner)
            else:
                self._requeue(actual, owner)
        if due:
            self.touched.update(due)
            if len(due) > 1:
                due.sort(key=_creation_order)
        return due

    def __len__(self) -> int:
        """Live entries: owners with an armed deadline, and those disarmed since (until their entry
        surfaces)."""
        return self._live

    def _requeue(self, actual: float | None, owner: T) -> None:
        """Replace the owner's live entry at the top of the heap by one at `actual` (None: drop it)."""
        timers = owner.timers
        if actual is None:
            heapq.heappop(self._heap)
            self._live -= 1
            timers.queue_entry = 0
            timers.queued_deadline = None
            return
        self._number += 1
        timers.queue_entry = self._number
        timers.queued_deadline = actual
        heapq.heapreplace(self._heap, (actual, self._number, owner))

    def _settle(self) -> None:
        """Queue the touched owners whose deadline came earlier than their live entry (or had none)."""
        touched = self.touched
        if not touched:
            return
        heap = self._heap
        for owner in touched:
            timers = owner.timers
            entry = timers.queue_entry
            if entry < 0:
                continue  # discarded
            deadline = timers.next_deadline()
            timers.settled_deadline = deadline
            if deadline is None:
                continue  # a live entry, if any, surfaces later and is dropped then
            queued = timers.queued_deadline
            if queued is not None and queued <= deadline:
                continue  # the live entry is still a lower bound
            if entry == 0:
                self._live += 1
            self._number += 1
            timers.queue_entry = self._number
            timers.queued_deadline = deadline
            heapq.heappush(heap, (deadline, self._number, owner))
        touched.clear()
        if len(heap) > 2 * self._live + _PURGE_SLACK:
            self._heap = [e for e in heap if e[2].timers.queue_entry == e[1]]
            heapq.heapify(self._heap)


def _creation_order(owner: HasTimers) -> int:
    return owner.timers.order


__all__ = ["HasTimers", "TimerQueue"]
