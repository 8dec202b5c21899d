"""One peer: its handshake, keypairs, timers, staged packets and counters (wireguard-go `peer.go`,
`send.go`, `timers.go` expiry actions).

A `Peer` belongs to a `Device` and writes its output into the device's queues.
"""

from __future__ import annotations

from collections import Counter, deque
from typing import TYPE_CHECKING

from wgdesk.proto import events, handshake
from wgdesk.proto.changes import Endpoint
from wgdesk.proto.constants import (
    HANDSHAKE_INITIATION_RATE,
    KEEPALIVE_TIMEOUT,
    MAX_STAGED_PACKETS,
    MAX_TIMER_HANDSHAKES,
    NEW_HANDSHAKE_TIMEOUT,
    PADDING_MULTIPLE,
    REJECT_AFTER_MESSAGES,
    REJECT_AFTER_TIME,
    REKEY_AFTER_MESSAGES,
    REKEY_AFTER_TIME,
    REKEY_ON_RECEIVE_AGE,
    REKEY_TIMEOUT,
    ZERO_KEYS_AFTER,
)
from wgdesk.proto.cookie import CookieGenerator
from wgdesk.proto.crypto import DHError, tai64n
from wgdesk.proto.events import DropReason
from wgdesk.proto.keypair import Keypair, Keypairs
from wgdesk.proto.keys import generate_private_key
from wgdesk.proto.timers import Timers

if TYPE_CHECKING:
    from wgdesk.proto.device import Device

_NONCE_PREFIX = bytes(4)
_ZEROS = bytes(PADDING_MULTIPLE + 65536)
_NEVER = float("-inf")


def padding_length(size: int, mtu: int) -> int:
    """Zero bytes to append to a `size`-byte packet: up to a multiple of 16, never past the MTU."""
    last = size
    if mtu == 0:
        return ((last + PADDING_MULTIPLE - 1) & ~(PADDING_MULTIPLE - 1)) - last
    if last > mtu:
        last %= mtu
    padded = (last + PADDING_MULTIPLE - 1) & ~(PADDING_MULTIPLE - 1)
    if padded > mtu:
        padded = mtu
    return padded - last


class Peer:
    """A configured peer and its protocol state."""

    __slots__ = (
        "cookie_generator",
        "cookie_resend_used",
        "counts",
        "device",
        "endpoint",
        "handshake",
        "keypairs",
        "last_handshake",
        "last_sent_handshake",
        "persistent_keepalive",
        "public_key",
        "rx_bytes",
        "staged",
        "timers",
        "tx_bytes",
    )

    def __init__(self, device: Device, public_key: bytes) -> None:
        self.device = device
        self.public_key = public_key
        self.handshake = handshake.Handshake(public_key)
        self.handshake.precompute(device.identity)
        self.cookie_generator = CookieGenerator(public_key)
        self.keypairs = Keypairs()
        self.timers = Timers()
        self.endpoint: Endpoint | None = None
        self.persistent_keepalive = 0
        self.staged: deque[bytes] = deque()
        self.rx_bytes = 0
        self.tx_bytes = 0
        self.last_handshake: float | None = None  # wall clock
        self.last_sent_handshake = _NEVER  # monotonic
        self.cookie_resend_used = False  # the initiation in flight was resent for a cookie reply
        self.counts: Counter[str] = Counter()
        """`PeerCounters` fields and ``drop:REASON``, kept by `Device.emit` and `Device.drop`."""

    # --- endpoint -------------------------------------------------------------------------------------

    def set_endpoint_from_packet(self, addr: Endpoint) -> None:
        """Roaming: the source of the latest authenticated packet becomes the endpoint."""
        old = self.endpoint
        if old != addr:
            self.device.endpoint_moved(self, old, addr)
            self.endpoint = addr
            self.device.emit(events.EndpointChanged(self.public_key, old, addr))

    # --- handshake ------------------------------------------------------------------------------------

    def send_handshake_initiation(self, now: float, retry: bool) -> None:
        """Start (or retry) a handshake; at most one initiation per Rekey-Timeout (a resend for a
        cookie reply, `cookie_reply_received`, is the attempt's second and does not count)."""
        self.device.timer_queue.touched.add(self)
        if not retry:
            self.timers.handshake_attempts = 0
        if now - self.last_sent_handshake < REKEY_TIMEOUT:
            return
        endpoint = self.endpoint
        if (
            self.device.identity is None
            or endpoint is None
            or self.handshake.precomputed_static_static is None
        ):
            return  # no key, nowhere to send, or a low-order peer key: never initiate
        self.last_sent_handshake = now
        timers = self.timers
        timers.cookie_resend = None
        self.cookie_resend_used = False  # a new attempt may be resent once for a cookie
        if self._send_initiation(now, endpoint):
            timers.on_handshake_initiated(now, self.device.jitter())
            self.device.emit(events.HandshakeInitiationSent(self.public_key, endpoint, retry))

    def cookie_reply_received(self, index: int, now: float) -> None:
        """A valid cookie reply answered our message with sender index `index` (the cookie is stored).

        Deliberate deviation from the whitepaper (§5.4.7: a cookie reply should not by itself cause a
        retransmission): if `index` is the initiation in flight, resend it right away with mac2 instead
        of after Rekey-Timeout — at most once per attempt, no sooner than Handshake-Initiation-Rate
        after that initiation, and without touching the attempt count or the retransmit deadline.
        """
        self.device.timer_queue.touched.add(self)
        hs = self.handshake
        timers = self.timers
        if (
            self.cookie_resend_used
            or hs.state != handshake.HandshakeState.INITIATION_CREATED
            or hs.local_index != index
            or timers.retransmit_handshake is None  # answered, gave up, or stopped
        ):
            return
        self.cookie_resend_used = True
        due = self.last_sent_handshake + HANDSHAKE_INITIATION_RATE
        if due <= now:
            self._resend_with_cookie(now)
        else:
            timers.cookie_resend = due

    def _resend_with_cookie(self, now: float) -> None:
        endpoint = self.endpoint
        if (
            self.handshake.state != handshake.HandshakeState.INITIATION_CREATED
            or self.timers.retransmit_handshake is None
            or self.device.identity is None
            or endpoint is None
        ):
            return  # no longer wanted (or possible) since the cookie reply came
        if self._send_initiation(now, endpoint):
            self.device.emit(events.HandshakeInitiationSent(self.public_key, endpoint, True))

    def _send_initiation(self, now: float, endpoint: Endpoint) -> bool:
        """Build and queue a fresh initiation (new ephemeral and index); False if the DH failed."""
        device = self.device
        identity = device.identity
        assert identity is not None
        hs = self.handshake
        device.unindex_handshake(self)
        index = device.new_index()
        try:
            msg = handshake.create_initiation(
                hs, identity, generate_private_key(device.rng), tai64n(device.wall_clock()), index
            )
        except DHError:
            hs.clear()
            return False
        device.index_handshake(index, self)
        packet = self.cookie_generator.add_macs(msg, now)
        timers = self.timers
        timers.on_any_authenticated_packet_traversal(now, self.persistent_keepalive)
        timers.on_any_authenticated_packet_sent()
        self._transmit(packet, endpoint)
        return True

    def send_handshake_response(self, now: float) -> None:
        """Answer a consumed initiation; the new keypair waits in `next` for confirmation."""
        device = self.device
        device.timer_queue.touched.add(self)
        endpoint = self.endpoint
        assert endpoint is not None  # set from the initiation's source
        self.last_sent_handshake = now
        device.unindex_handshake(self)
        index = device.new_index()
        try:
            msg = handshake.create_response(self.handshake, generate_private_key(device.rng), index)
        except DHError:
            self.handshake.clear()
            device.drop(DropReason.INVALID_HANDSHAKE, self.public_key, endpoint)
            return
        device.index_handshake(index, self)
        packet = self.cookie_generator.add_macs(msg, now)
        self.begin_symmetric_session(now, initiator=False)
        timers = self.timers
        timers.on_session_derived(now)
        timers.on_any_authenticated_packet_traversal(now, self.persistent_keepalive)
        timers.on_any_authenticated_packet_sent()
        self._transmit(packet, endpoint)
        device.emit(events.HandshakeResponseSent(self.public_key, endpoint))

    def begin_symmetric_session(self, now: float, initiator: bool) -> None:
        """Derive the transport keypair from the finished handshake and install it."""
        hs = self.handshake
        local_index = hs.local_index
        remote_index = hs.remote_index
        send_key, receive_key = handshake.split(hs, initiator)
        keypair = Keypair(self, send_key, receive_key, initiator, now, local_index, remote_index)
        device = self.device
        device.unindex_handshake(self)
        hs.local_index = 0
        for old in self.keypairs.begin_session(keypair):
            device.unindex_keypair(old)
        device.index_keypair(keypair)

    def handshake_complete(self) -> None:
        """A session is confirmed: stop retransmitting, record the wall-clock time."""
        self.device.timer_queue.touched.add(self)
        self.timers.on_handshake_complete()
        self.last_handshake = self.device.wall_clock()
        current = self.keypairs.current
        self.device.emit(
            events.HandshakeCompleted(self.public_key, current.initiator if current is not None else False)
        )

    def expire_current_keypairs(self) -> None:
        """After a private-key change: forget the handshake, stop sending on current keys (they may still
        receive), allow a new initiation at once."""
        self.device.unindex_handshake(self)
        self.handshake.clear()
        self.last_sent_handshake = _NEVER
        for kp in (self.keypairs.current, self.keypairs.next):
            if kp is not None:
                kp.send_counter = REJECT_AFTER_MESSAGES

    def zero_and_flush_all(self) -> None:
        """Forget every key and staged packet (540 s after the last session, or peer removal)."""
        device = self.device
        for kp in self.keypairs.clear():
            device.unindex_keypair(kp)
        device.unindex_handshake(self)
        self.handshake.clear()
        if self.staged:
            device.drop_many(DropReason.HANDSHAKE_GAVE_UP, len(self.staged), self.public_key)
            self.staged.clear()

    # --- sending --------------------------------------------------------------------------------------

    def _transmit(self, packet: bytes, endpoint: Endpoint) -> None:
        self.tx_bytes += len(packet)
        self.device.outgoing.append((packet, endpoint))

    def send_data(self, packet: bytes, now: float) -> None:
        """Send one IP packet, or stage it until a keypair is ready."""
        self.device.timer_queue.touched.add(self)
        kp = self.keypairs.current
        if (
            self.staged
            or kp is None
            or kp.send_counter >= REJECT_AFTER_MESSAGES
            or now - kp.created >= REJECT_AFTER_TIME
        ):
            self.stage(packet)
            self.send_staged_packets(now)
            return
        endpoint = self.endpoint
        if endpoint is None:
            self.device.drop(DropReason.NO_ENDPOINT, self.public_key)
            return
        self._seal(kp, packet, endpoint, now)
        self.keep_key_fresh_sending(now, kp)

    def stage(self, packet: bytes) -> None:
        """Queue a packet while no keypair can send; the oldest is dropped when full."""
        if len(self.staged) >= MAX_STAGED_PACKETS:
            self.staged.popleft()
            self.device.drop(DropReason.STAGED_OVERFLOW, self.public_key)
        self.staged.append(packet)

    def _seal(self, kp: Keypair, packet: bytes, endpoint: Endpoint, now: float) -> None:
        counter = kp.send_counter
        kp.send_counter = counter + 1
        size = len(packet)
        device = self.device
        pad = padding_length(size, device.mtu)
        if pad:
            packet = packet + _ZEROS[:pad]
        ctr = counter.to_bytes(8, "little")
        out = kp.header_prefix + ctr + kp.send.encrypt(_NONCE_PREFIX + ctr, packet, None)
        self.tx_bytes += len(out)
        device.outgoing.append((out, endpoint))
        timers = self.timers
        if size and timers.new_handshake is None:
            timers.new_handshake = now + NEW_HANDSHAKE_TIMEOUT + device.jitter()
        timers.send_keepalive = None
        if self.persistent_keepalive:
            timers.persistent_keepalive = now + self.persistent_keepalive

    def send_staged_packets(self, now: float) -> None:
        """Send what is staged on the current keypair, or start a handshake if none can send."""
        self.device.timer_queue.touched.add(self)
        while self.staged:
            kp = self.keypairs.current
            if (
                kp is None
                or kp.send_counter >= REJECT_AFTER_MESSAGES
                or now - kp.created >= REJECT_AFTER_TIME
            ):
                self.send_handshake_initiation(now, retry=False)
                return
            endpoint = self.endpoint
            if endpoint is None:
                self.device.drop_many(DropReason.NO_ENDPOINT, len(self.staged), self.public_key)
                self.staged.clear()
                return
            staged = self.staged
            while staged and kp.send_counter < REJECT_AFTER_MESSAGES:
                self._seal(kp, staged.popleft(), endpoint, now)
            self.keep_key_fresh_sending(now, kp)

    def send_keepalive(self, now: float) -> None:
        """Send an empty transport message (or whatever is staged, which serves as one)."""
        if not self.staged:
            self.staged.append(b"")
        self.send_staged_packets(now)

    def keep_key_fresh_sending(self, now: float, kp: Keypair) -> None:
        """Rekey after Rekey-After-Messages, or (initiator) Rekey-After-Time."""
        if kp.send_counter > REKEY_AFTER_MESSAGES or (kp.initiator and now - kp.created > REKEY_AFTER_TIME):
            self.send_handshake_initiation(now, retry=False)

    def keep_key_fresh_receiving(self, now: float) -> None:
        """The initiator rekeys once when receiving on a keypair older than 165 s."""
        timers = self.timers
        if timers.sent_last_minute_handshake:
            return
        kp = self.keypairs.current
        if kp is not None and kp.initiator and now - kp.created > REKEY_ON_RECEIVE_AGE:
            timers.sent_last_minute_handshake = True
            self.send_handshake_initiation(now, retry=False)

    # --- receiving ------------------------------------------------------------------------------------

    def received_authenticated_handshake(self, addr: Endpoint, size: int, now: float) -> None:
        """Bookkeeping for a valid initiation or response from this peer."""
        self.device.timer_queue.touched.add(self)
        self.rx_bytes += size
        self.timers.on_any_authenticated_packet_traversal(now, self.persistent_keepalive)
        self.timers.new_handshake = None
        self.set_endpoint_from_packet(addr)

    def received_transport(self, kp: Keypair, addr: Endpoint, size: int, now: float) -> None:
        """Bookkeeping for an authenticated, non-replayed transport message on `kp`. It changes
        timers: the caller (the device's receive loop) touches the peer in its `timer_queue`."""
        if self.endpoint != addr:
            self.set_endpoint_from_packet(addr)
        if kp is self.keypairs.next:
            dropped = self.keypairs.received_with(kp)
            if isinstance(dropped, Keypair):
                self.device.unindex_keypair(dropped)
            self.handshake_complete()
            self.send_staged_packets(now)
        timers = self.timers
        if not timers.sent_last_minute_handshake:
            self.keep_key_fresh_receiving(now)
        if self.persistent_keepalive:
            timers.persistent_keepalive = now + self.persistent_keepalive
        timers.new_handshake = None
        self.rx_bytes += size

    # --- timers ---------------------------------------------------------------------------------------

    def handle_timer(self, now: float) -> None:
        """Run every expired timer action (whitepaper §6 order)."""
        self.device.timer_queue.touched.add(self)
        t = self.timers
        if t.retransmit_handshake is not None and t.retransmit_handshake <= now:
            t.retransmit_handshake = None
            self._expired_retransmit_handshake(now)  # a new attempt cancels a pending cookie resend
        if t.cookie_resend is not None and t.cookie_resend <= now:
            t.cookie_resend = None
            self._resend_with_cookie(now)
        if t.send_keepalive is not None and t.send_keepalive <= now:
            t.send_keepalive = None
            self.send_keepalive(now)
            if t.need_another_keepalive:
                t.need_another_keepalive = False
                t.send_keepalive = now + KEEPALIVE_TIMEOUT
        if t.new_handshake is not None and t.new_handshake <= now:
            t.new_handshake = None
            self.send_handshake_initiation(now, retry=False)
        if t.zero_key_material is not None and t.zero_key_material <= now:
            t.zero_key_material = None
            had_keys = bool(self.keypairs.all())
            self.zero_and_flush_all()
            if had_keys:
                self.device.emit(events.KeypairExpired(self.public_key))
        if t.persistent_keepalive is not None and t.persistent_keepalive <= now:
            t.persistent_keepalive = None
            if self.persistent_keepalive:
                self.send_keepalive(now)

    def _expired_retransmit_handshake(self, now: float) -> None:
        t = self.timers
        if t.handshake_attempts > MAX_TIMER_HANDSHAKES:
            t.send_keepalive = None
            if self.staged:
                self.device.drop_many(DropReason.HANDSHAKE_GAVE_UP, len(self.staged), self.public_key)
                self.staged.clear()
            if t.zero_key_material is None:
                t.zero_key_material = now + ZERO_KEYS_AFTER
            self.device.emit(events.HandshakeGaveUp(self.public_key, MAX_TIMER_HANDSHAKES + 2))
        else:
            t.handshake_attempts += 1
            self.send_handshake_initiation(now, retry=True)

    def next_deadline(self) -> float | None:
        return self.timers.next_deadline()


__all__ = ["Peer", "padding_length"]
