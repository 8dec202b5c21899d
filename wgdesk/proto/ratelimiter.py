"""Rate limiting of handshake initiations per source address, while the device is under load.

A token bucket per key (a packed source IP): 20 packets per second, bursts of 5, as in the kernel
and wireguard-go. Tokens are counted in integer nanoseconds so that bursts are exact. Entries idle
for more than a second are dropped by a sweep that runs at most once a second; the table is
bounded, and a new key arriving while it is full is refused (the kernel's behaviour).
"""

from __future__ import annotations

from typing import Final

PACKETS_PER_SECOND: Final = 20
PACKETS_BURSTABLE: Final = 5
GARBAGE_COLLECT_TIME: Final = 1.0
MAX_ENTRIES: Final = 65536

_NS: Final = 1_000_000_000
PACKET_COST: Final = _NS // PACKETS_PER_SECOND  # ns of tokens one packet costs
MAX_TOKENS: Final = PACKET_COST * PACKETS_BURSTABLE
_GC_NS: Final = int(GARBAGE_COLLECT_TIME * _NS)


class RateLimiter:
    """Token buckets keyed by source address; time comes only from the `now` arguments."""

    __slots__ = ("_last_gc", "_max_entries", "_table")

    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries must be at least 1, not {max_entries}")
        self._max_entries = max_entries
        self._table: dict[bytes, list[int]] = {}  # key -> [tokens_ns, last_time_ns]
        self._last_gc: int | None = None

    def allow(self, key: bytes, now: float) -> bool:
        """Whether a packet from `key` at monotonic time `now` (seconds) may be processed."""
        now_ns = round(now * _NS)
        last_gc = self._last_gc
        if last_gc is None:
            self._last_gc = now_ns
        elif now_ns - last_gc >= _GC_NS:
            self._collect(now_ns)
        entry = self._table.get(key)
        if entry is None:
            if len(self._table) >= self._max_entries:
                return False
            self._table[key] = [MAX_TOKENS - PACKET_COST, now_ns]
            return True
        elapsed = now_ns - entry[1]
        tokens = entry[0] + (elapsed if elapsed > 0 else 0)
        if tokens > MAX_TOKENS:
            tokens = MAX_TOKENS
        if elapsed > 0:
            entry[1] = now_ns
        if tokens >= PACKET_COST:
            entry[0] = tokens - PACKET_COST
            return True
        entry[0] = tokens
        return False

    def _collect(self, now_ns: int) -> None:
        self._last_gc = now_ns
        stale = [k for k, (_, last) in self._table.items() if now_ns - last > _GC_NS]
        for k in stale:
            del self._table[k]

    def clear(self) -> None:
        """Forget every bucket."""
        self._table.clear()
        self._last_gc = None

    def __len__(self) -> int:
        return len(self._table)
