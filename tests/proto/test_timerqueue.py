"""`TimerQueue` on its own, against a brute-force scan of every owner (the oracle).

Owners are bare `Timers` holders; the machine arms, moves and disarms their deadlines at random
(touching them, as the device does), discards some, and compares `earliest()` and `pop_due()` with
the scan. Many deadline moves without a look in between exercise stale entries and the purge.
"""

from __future__ import annotations

import hypothesis.strategies as st
from hypothesis import settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from wgdesk.proto.timerqueue import TimerQueue
from wgdesk.proto.timers import Timers

FIELDS = (
    "retransmit_handshake",
    "cookie_resend",
    "send_keepalive",
    "new_handshake",
    "zero_key_material",
    "persistent_keepalive",
)


class Owner:
    __slots__ = ("name", "timers")

    def __init__(self, name: int) -> None:
        self.name = name
        self.timers = Timers()


def scan_earliest(owners: list[Owner]) -> float | None:
    deadlines = [d for o in owners if (d := o.timers.next_deadline()) is not None]
    return min(deadlines, default=None)


def scan_due(owners: list[Owner], now: float) -> list[Owner]:
    return [o for o in owners if (d := o.timers.next_deadline()) is not None and d <= now]


class QueueMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.queue: TimerQueue[Owner] = TimerQueue()
        self.owners: list[Owner] = []  # in creation order, as a device lists its peers
        self.gone: list[Owner] = []
        self.now = 0.0
        self.created = 0

    @rule(count=st.integers(1, 20))
    def add(self, count: int) -> None:
        for _ in range(count):
            owner = Owner(self.created)
            self.created += 1
            self.owners.append(owner)
            self.queue.touch(owner)

    @precondition(lambda self: self.owners)
    @rule(
        data=st.data(),
        field=st.sampled_from(FIELDS),
        value=st.one_of(st.none(), st.floats(-5.0, 600.0), st.integers(0, 30).map(float)),
        look=st.booleans(),
    )
    def set_deadline(self, data: st.DataObject, field: str, value: float | None, look: bool) -> None:
        owner = data.draw(st.sampled_from(self.owners))
        setattr(owner.timers, field, None if value is None else self.now + value)
        self.queue.touch(owner)
        if look:
            assert self.queue.earliest() == scan_earliest(self.owners)

    @precondition(lambda self: self.owners)
    @rule(data=st.data(), moves=st.integers(1, 200), step=st.floats(-1.0, 3.0))
    def churn(self, data: st.DataObject, moves: int, step: float) -> None:
        """One owner's keepalive deadline moves many times between looks (as data keeps flowing)."""
        owner = data.draw(st.sampled_from(self.owners))
        for _ in range(moves):
            t = owner.timers
            t.persistent_keepalive = (
                self.now + 1.0 if t.persistent_keepalive is None else t.persistent_keepalive + step
            )
            self.queue.touch(owner)
            if step < 0:
                assert self.queue.earliest() == scan_earliest(self.owners)  # a decrease each look

    @precondition(lambda self: self.owners)
    @rule(data=st.data())
    def discard(self, data: st.DataObject) -> None:
        owner = data.draw(st.sampled_from(self.owners))
        self.owners.remove(owner)
        owner.timers.stop()
        self.queue.discard(owner)
        self.gone.append(owner)

    @precondition(lambda self: self.gone)
    @rule(data=st.data(), value=st.floats(-5.0, 5.0))
    def touch_discarded(self, data: st.DataObject, value: float) -> None:
        """A removed peer touched again (a stale reference) never comes back."""
        owner = data.draw(st.sampled_from(self.gone))
        owner.timers.send_keepalive = self.now + value
        self.queue.touch(owner)

    @rule(dt=st.one_of(st.just(0.0), st.floats(0.0, 2.0), st.floats(2.0, 300.0)))
    def advance_and_pop(self, dt: float) -> None:
        self.now += dt
        expected = scan_due(self.owners, self.now)
        due = self.queue.pop_due(self.now)
        assert [o.name for o in due] == [o.name for o in expected]
        for owner in due:  # "run" the timers: each due deadline is disarmed or pushed later
            t = owner.timers
            for field in FIELDS:
                d = getattr(t, field)
                if d is not None and d <= self.now:
                    setattr(t, field, None if field == "zero_key_material" else self.now + 10.0)

    @rule()
    def pop_nothing_before_earliest(self) -> None:
        earliest = self.queue.earliest()
        if earliest is not None:
            assert self.queue.pop_due(earliest - 1e-6) == [] or scan_due(self.owners, earliest - 1e-6)

    @invariant()
    def agrees_with_scan(self) -> None:
        assert self.queue.earliest() == scan_earliest(self.owners)
        armed = [o for o in self.owners if o.timers.next_deadline() is not None]
        assert len(armed) <= len(self.queue) <= len(self.owners)  # disarmed ones leave lazily
        for o in armed:  # settled: every armed owner has a live entry that bounds its deadline
            queued = o.timers.queued_deadline
            deadline = o.timers.next_deadline()
            assert o.timers.queue_entry > 0 and queued is not None and deadline is not None
            assert queued <= deadline
        assert len(self.queue._heap) <= 2 * len(self.owners) + 64  # dead entries are purged


QueueMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=50, deadline=None)
TestTimerQueue = QueueMachine.TestCase


def test_due_peers_come_out_in_creation_order_not_deadline_order() -> None:
    queue: TimerQueue[Owner] = TimerQueue()
    owners = [Owner(i) for i in range(5)]
    for owner, deadline in zip(owners, (4.0, 1.0, 3.0, 9.0, 2.0), strict=True):
        owner.timers.send_keepalive = deadline
        queue.touch(owner)
    assert queue.earliest() == 1.0
    due = queue.pop_due(4.0)
    assert [o.name for o in due] == [0, 1, 2, 4]
    assert queue.earliest() == 1.0  # popped owners are touched: not run, they are due again
    for owner in due:
        owner.timers.send_keepalive = None  # run
        queue.touch(owner)
    assert queue.earliest() == 9.0
    assert [o.name for o in queue.pop_due(100.0)] == [3]


def test_a_deadline_moved_later_is_requeued_when_its_old_entry_surfaces() -> None:
    queue: TimerQueue[Owner] = TimerQueue()
    a, b = Owner(0), Owner(1)
    a.timers.persistent_keepalive, b.timers.persistent_keepalive = 10.0, 20.0
    queue.touch(a)
    queue.touch(b)
    assert queue.earliest() == 10.0
    a.timers.persistent_keepalive = 30.0
    queue.touch(a)
    assert queue.earliest() == 20.0
    assert queue.pop_due(25.0) == [b]
    b.timers.persistent_keepalive = None
    a.timers.persistent_keepalive = None
    queue.touch(a)
    assert queue.earliest() is None and len(queue) == 0
