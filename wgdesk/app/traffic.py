"""The transfer history of each peer over the last minutes, for its rates and throughput graph.

Pure bookkeeping (no Qt, no clock of its own): the caller hands in every status report with the monotonic time
it arrived, and reads back ``(time, rx bytes, tx bytes)`` samples, oldest first.
"""

from __future__ import annotations

from collections.abc import Mapping

from wgdesk.snapshots import TunnelSnapshot

HISTORY_SECONDS = 300.0
"""How far back the samples go (the graph's width)."""

Sample = tuple[float, int, int]
"""(monotonic time, bytes received, bytes sent) of one peer at one status report."""


class TrafficHistory:
    """Samples per (tunnel, peer public key); a tunnel's samples go when it is no longer reported."""

    def __init__(self, keep: float = HISTORY_SECONDS) -> None:
        self._keep = keep
        self._samples: dict[tuple[str, str], list[Sample]] = {}

    def record(self, statuses: Mapping[str, TunnelSnapshot], now: float) -> None:
        """Add one sample per peer of each reported tunnel (*statuses*: name -> the helper's status),
        drop samples older than the window, and forget tunnels that are not reported."""
        for name, status in statuses.items():
            for peer in status.peers:
                key = (name, peer.public_key)
                samples = self._samples.setdefault(key, [])
                samples.append((now, peer.rx_bytes, peer.tx_bytes))
                while samples and now - samples[0][0] > self._keep:
                    samples.pop(0)
        for key in [k for k in self._samples if k[0] not in statuses]:
            del self._samples[key]

    def samples(self, name: str, peer: str) -> list[Sample]:
        """The samples of *peer* in tunnel *name*, oldest first (empty when there are none)."""
        return self._samples.get((name, peer), [])

    def clear(self) -> None:
        """Forget everything (the helper cannot be reached: the counters are unknown)."""
        self._samples.clear()
