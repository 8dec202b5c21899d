"""The app's core without Qt: which health changes are told (`Transitions`) and the traffic history
(`TrafficHistory`), as tables and short histories with time as an argument."""

from __future__ import annotations

import pytest

from wgdesk.app.state import Health
from wgdesk.app.traffic import TrafficHistory
from wgdesk.app.transitions import Announcement, Change, Outcome, Transitions
from wgdesk.snapshots import TunnelSnapshot

H = Health


def _observe(t: Transitions, healths: dict[str, Health]) -> list[Change]:
    """One report listing the tunnels that are not DOWN (as the helper does)."""
    return t.observe([n for n, h in healths.items() if h != H.DOWN], lambda n: healths.get(n, H.DOWN))


@pytest.mark.parametrize(
    ("before", "after", "told"),
    [
        (H.DOWN, H.HEALTHY, [Outcome.CONNECTED]),
        (H.STARTING, H.HEALTHY, [Outcome.CONNECTED]),
        (H.WAITING, H.HEALTHY, [Outcome.CONNECTED]),
        (H.IDLE, H.HEALTHY, []),  # traffic again after a quiet spell
        (H.HEALTHY, H.IDLE, []),
        (H.DOWN, H.STARTING, []),
        (H.STARTING, H.WAITING, []),
        (H.HEALTHY, H.DOWN, [Outcome.DISCONNECTED]),
        (H.WAITING, H.DOWN, [Outcome.DISCONNECTED]),
        (H.HEALTHY, H.ERROR, [Outcome.FAILED]),
        (H.STARTING, H.ERROR, [Outcome.FAILED]),
        (H.ERROR, H.DOWN, [Outcome.DISCONNECTED]),
        (H.HEALTHY, H.HEALTHY, []),
    ],
)
def test_a_health_change_is_told_by_this_table(before: Health, after: Health, told: list[Outcome]) -> None:
    t = Transitions()
    _observe(t, {"wg0": before})
    assert [(c.name, c.outcome) for c in _observe(t, {"wg0": after})] == [("wg0", o) for o in told]


def test_a_tunnel_first_seen_healthy_is_told_connected_and_changes_come_sorted() -> None:
    t = Transitions()
    assert _observe(t, {"b": H.HEALTHY, "a": H.ERROR}) == [
        Change("a", Outcome.FAILED),
        Change("b", Outcome.CONNECTED),
    ]


def test_an_announcement_replaces_the_plain_words_once() -> None:
    t = Transitions()
    rule = Announcement(H.HEALTHY, "Network rule", "Connected wg0: untrusted network Cafe")
    t.announce("wg0", rule)
    assert _observe(t, {"wg0": H.STARTING}) == []
    assert _observe(t, {"wg0": H.HEALTHY}) == [Change("wg0", Outcome.ANNOUNCED, rule)]
    assert _observe(t, {"wg0": H.DOWN}) == [Change("wg0", Outcome.DISCONNECTED)]
    assert _observe(t, {"wg0": H.HEALTHY}) == [Change("wg0", Outcome.CONNECTED)]


def test_an_announcement_that_does_not_come_true_is_dropped() -> None:
    t = Transitions()
    t.announce("wg0", Announcement(H.HEALTHY, "Network rule", "Connected wg0"))
    assert _observe(t, {"wg0": H.ERROR}) == [Change("wg0", Outcome.FAILED)]
    assert _observe(t, {"wg0": H.WAITING}) == []
    assert _observe(t, {"wg0": H.HEALTHY}) == [Change("wg0", Outcome.CONNECTED)]


def test_a_withdrawn_announcement_is_not_said() -> None:
    t = Transitions()
    _observe(t, {"wg0": H.HEALTHY})
    t.announce("wg0", Announcement(H.DOWN, "Network rule", "Disconnected wg0"))
    t.withdraw("wg0")
    assert _observe(t, {"wg0": H.DOWN}) == [Change("wg0", Outcome.DISCONNECTED)]


def test_after_forgetting_nothing_is_said_about_tunnels_out_of_sight() -> None:
    t = Transitions()
    _observe(t, {"wg0": H.HEALTHY})
    t.forget_health()  # the helper went away: its tunnels are not listed now
    assert t.observe([], lambda n: H.DOWN) == []
    assert _observe(t, {"wg0": H.HEALTHY}) == [Change("wg0", Outcome.CONNECTED)]


def test_traffic_keeps_a_window_per_peer_and_forgets_tunnels_not_reported() -> None:
    def status(rx: int, tx: int) -> TunnelSnapshot:
        peers = [{"public_key": "P", "rx_bytes": rx, "tx_bytes": tx}, {"public_key": "Q"}]
        return TunnelSnapshot.from_wire({"name": "t", "interface": "t", "state": "up", "peers": peers})

    history = TrafficHistory(keep=10.0)
    history.record({"wg0": status(1, 2)}, now=100.0)
    history.record({"wg0": status(3, 4), "wg1": status(5, 6)}, now=105.0)
    history.record({"wg0": status(7, 8)}, now=110.5)
    assert history.samples("wg0", "P") == [(105.0, 3, 4), (110.5, 7, 8)]  # 100.0 is 10.5 s old
    assert history.samples("wg0", "Q") == [(105.0, 0, 0), (110.5, 0, 0)]  # counters not reported yet: 0
    assert history.samples("wg1", "P") == []  # wg1 was not in the last report
    history.clear()
    assert history.samples("wg0", "P") == []
