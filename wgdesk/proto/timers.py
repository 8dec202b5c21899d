"""The per-peer timer state of whitepaper §6, as deadlines (wireguard-go `timers.go`).

Each timer is a monotonic deadline or None. The `on_*` methods are the events that arm or disarm
them; `Peer.handle_timer` runs the expiry actions. Rules, in whitepaper order:

* retransmit_handshake: Rekey-Timeout + jitter after an initiation is sent, unless a response came;
  on expiry resend, up to Rekey-Attempt-Time (20 initiations in all), then give up.
* send_keepalive: Keepalive-Timeout after a data packet is received, unless we sent something
  authenticated meanwhile; on expiry send a keepalive.
* new_handshake: Keepalive-Timeout + Rekey-Timeout (+ jitter) after a data packet is sent, unless
  something authenticated was received meanwhile; on expiry initiate a handshake.
* zero_key_material: 3 × Reject-After-Time after a session was derived; on expiry zero all keys.
* persistent_keepalive: the configured interval after any authenticated packet sent or received.
* cookie_resend (ours, not the whitepaper's): a valid cookie reply answered the initiation in flight;
  resend it with mac2 once Handshake-Initiation-Rate (20 ms) has passed since that initiation, at most
  once per attempt (docs/architecture.md, protocol deviations). It leaves the retransmit deadline and
  the attempt count alone.
"""

from __future__ import annotations

import itertools

from wgdesk.proto.constants import (
    REKEY_TIMEOUT,
    REKEY_TIMEOUT_JITTER_MAX,
    ZERO_KEYS_AFTER,
)

JITTER_STEPS = int(REKEY_TIMEOUT_JITTER_MAX * 1000)  # 334 → 0..333 ms

_created = itertools.count(1)


class Timers:
    """Deadlines and counters of one peer's timers.

    `order` (creation order, for running due peers in the order the device lists them),
    `queue_entry`, `queued_deadline` and `settled_deadline` belong to the device's `TimerQueue`
    (timerqueue.py).
    """

    __slots__ = (
        "cookie_resend",
        "handshake_attempts",
        "need_another_keepalive",
        "new_handshake",
        "order",
        "persistent_keepalive",
        "queue_entry",
        "queued_deadline",
        "retransmit_handshake",
        "send_keepalive",
        "sent_last_minute_handshake",
        "settled_deadline",
        "zero_key_material",
    )

    def __init__(self) -> None:
        self.order = next(_created)
        self.queue_entry = 0  # number of the live queue entry; 0 none, -1 discarded
        self.queued_deadline: float | None = None  # that entry's deadline
        self.settled_deadline: float | None = None  # next_deadline() when the queue last looked
        self.stop()

    def next_deadline(self) -> float | None:
        """The earliest armed deadline, or None."""
        best = self.retransmit_handshake
        t = self.cookie_resend
        if t is not None and (best is None or t < best):
            best = t
        t = self.send_keepalive
        if t is not None and (best is None or t < best):
            best = t
        t = self.new_handshake
        if t is not None and (best is None or t < best):
            best = t
        t = self.zero_key_material
        if t is not None and (best is None or t < best):
            best = t
        t = self.persistent_keepalive
        if t is not None and (best is None or t < best):
            best = t
        return best

    def stop(self) -> None:
        """Disarm everything (peer removed or zeroed)."""
        self.retransmit_handshake: float | None = None
        self.cookie_resend: float | None = None
        self.send_keepalive: float | None = None
        self.new_handshake: float | None = None
        self.zero_key_material: float | None = None
        self.persistent_keepalive: float | None = None
        self.handshake_attempts = 0
        self.need_another_keepalive = False
        self.sent_last_minute_handshake = False

    # Events (wireguard-go timersXxx). The data path (peer.py, device.py) applies the per-packet ones
    # inline: data sent arms new_handshake, data received arms send_keepalive (or asks for another),
    # anything authenticated received disarms new_handshake. Whoever changes a deadline touches the
    # peer in the device's timer_queue before the device next answers get_timer/handle_timer.

    def on_any_authenticated_packet_sent(self) -> None:
        self.send_keepalive = None

    def on_any_authenticated_packet_traversal(self, now: float, persistent_keepalive: int) -> None:
        if persistent_keepalive:
            self.persistent_keepalive = now + persistent_keepalive

    def on_handshake_initiated(self, now: float, jitter: float) -> None:
        self.retransmit_handshake = now + REKEY_TIMEOUT + jitter

    def on_handshake_complete(self) -> None:
        self.retransmit_handshake = None
        self.cookie_resend = None
        self.handshake_attempts = 0
        self.sent_last_minute_handshake = False

    def on_session_derived(self, now: float) -> None:
        self.zero_key_material = now + ZERO_KEYS_AFTER
