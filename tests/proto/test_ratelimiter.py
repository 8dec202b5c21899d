"""RateLimiter with a fake clock: wireguard-go's burst table, GC, bounds, and a bucket model."""

from __future__ import annotations

from ipaddress import ip_address

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wgdesk.proto.ratelimiter import RateLimiter

KEYS = [
    ip_address(a).packed
    for a in (
        "127.0.0.1",
        "192.168.1.1",
        "172.167.2.3",
        "97.231.252.215",
        "248.97.91.167",
        "2001:db8:a0b:12f0::1",
        "f5c2:818f:c052:655a:9860:b136:6894:25f0",
        "3f0e:54a2:f5b4:cd19:a21d:58e1:3746:84c4",
    )
]

# (seconds to wait first, expected) — the sequence of wireguard-go's ratelimiter test.
SEQUENCE = [(0.0, True)] * 5 + [
    (0.0, False),  # after the burst
    (0.05, True),  # one packet's worth refilled
    (0.0, False),
    (0.10, True),  # two packets' worth
    (0.0, True),
    (0.0, False),
]


def test_wireguard_go_sequence_for_many_addresses() -> None:
    r = RateLimiter()
    now = 1000.0
    for step, (wait, expected) in enumerate(SEQUENCE):
        now += wait
        got = [r.allow(k, now) for k in KEYS]
        assert got == [expected] * len(KEYS), (step, got)


def test_keys_are_independent() -> None:
    r = RateLimiter()
    assert all(r.allow(b"\x01\x02\x03\x04", 5.0) for _ in range(5))
    assert r.allow(b"\x01\x02\x03\x04", 5.0) is False
    assert r.allow(b"\x01\x02\x03\x05", 5.0) is True


def test_sustained_rate_is_twenty_per_second() -> None:
    r = RateLimiter()
    key = b"\x0a\x00\x00\x01"
    allowed = sum(r.allow(key, 7.0 + i / 1000) for i in range(10_000))  # 1000 attempts/s for 10 s
    assert allowed == 5 + 20 * 10 - 1  # the burst, then one per 50 ms up to t = 9.999 s


def test_idle_entries_are_collected_after_a_second() -> None:
    r = RateLimiter()
    r.allow(b"old", 0.0)
    r.allow(b"busy", 0.0)
    r.allow(b"busy", 0.6)
    assert len(r) == 2
    r.allow(b"busy", 1.2)  # a sweep: "old" idle for 1.2 s goes, "busy" (0.6 s) stays
    assert len(r) == 1
    r.allow(b"busy", 1.5)  # no sweep within the same second
    r.allow(b"x", 1.5)
    assert len(r) == 2
    r.allow(b"y", 3.0)  # everything else idle > 1 s
    assert len(r) == 1


def test_table_is_bounded() -> None:
    r = RateLimiter(max_entries=3)
    assert [r.allow(bytes([i]), 0.0) for i in range(5)] == [True, True, True, False, False]
    assert len(r) == 3
    assert r.allow(bytes([9]), 2.5) is True  # the sweep made room
    assert len(r) == 1


def test_invalid_bound() -> None:
    with pytest.raises(ValueError, match="max_entries"):
        RateLimiter(max_entries=0)


def test_clock_going_backwards_grants_nothing() -> None:
    r = RateLimiter()
    assert all(r.allow(b"k", 100.0) for _ in range(5))
    assert r.allow(b"k", 50.0) is False
    assert r.allow(b"k", 100.0) is False
    assert r.allow(b"k", 100.05) is True


def test_clear() -> None:
    r = RateLimiter()
    for _ in range(6):
        r.allow(b"k", 1.0)
    r.clear()
    assert len(r) == 0 and r.allow(b"k", 1.0) is True


class Bucket:
    """The token bucket without any table management, in exact nanoseconds."""

    def __init__(self) -> None:
        self.state: dict[bytes, tuple[int, int]] = {}

    def allow(self, key: bytes, now_ns: int) -> bool:
        cost, cap = 50_000_000, 250_000_000
        tokens, last = self.state.get(key, (cap, now_ns))
        tokens = min(cap, tokens + max(0, now_ns - last))
        ok = tokens >= cost
        self.state[key] = (tokens - cost if ok else tokens, max(last, now_ns))
        return ok


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 400_000_000), st.sampled_from([b"a", b"b", b"c"])), max_size=120))
def test_matches_bucket_model_despite_collection(steps: list[tuple[int, bytes]]) -> None:
    # Collection only drops buckets that would be full again, so it must never change an answer.
    r, m = RateLimiter(), Bucket()
    now_ns = 10**12
    for gap, key in steps:
        now_ns += gap
        assert r.allow(key, now_ns / 1e9) == m.allow(key, now_ns), now_ns
