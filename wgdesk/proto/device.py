"""The sans-I/O WireGuard device (the `Device` API of docs/architecture.md).

Inputs take `now` (monotonic seconds); outputs are pulled. Randomness and the wall clock are
injected. Network input never raises: it is dropped and counted by reason in `snapshot().dropped`.
Local misuse (`apply` with invalid values) raises `ConfigurationError`.
"""

from __future__ import annotations

import errno
import ipaddress
import struct
from collections import Counter, deque
from collections.abc import Callable, Iterable

from cryptography.exceptions import InvalidTag

from wgdesk.proto import events, handshake, messages
from wgdesk.proto.allowedips import AllowedIPs
from wgdesk.proto.changes import (
    NO_KEY,
    ConfigurationError,
    DeviceChange,
    DeviceSnapshot,
    Endpoint,
    PeerChange,
    PeerCounters,
    PeerSnapshot,
)
from wgdesk.proto.constants import (
    DEFAULT_MTU,
    KEEPALIVE_TIMEOUT,
    KEY_SIZE,
    MAX_EVENTS,
    MAX_PERSISTENT_KEEPALIVE,
    MESSAGE_COOKIE_REPLY_TYPE,
    MESSAGE_INITIATION_TYPE,
    MESSAGE_RESPONSE_TYPE,
    MESSAGE_TRANSPORT_SIZE,
    NEW_HANDSHAKE_TIMEOUT,
    REJECT_AFTER_MESSAGES,
    REJECT_AFTER_TIME,
    REKEY_AFTER_MESSAGES,
    REKEY_AFTER_TIME,
    UNDER_LOAD_AFTER_TIME,
    UNDER_LOAD_QUEUE_SIZE,
)
from wgdesk.proto.cookie import CookieChecker
from wgdesk.proto.datapath import Batch, DataPath, Run
from wgdesk.proto.events import DropReason, Event
from wgdesk.proto.handshake import HandshakeState, StaticIdentity
from wgdesk.proto.keypair import Keypair
from wgdesk.proto.peer import Peer
from wgdesk.proto.ratelimiter import RateLimiter
from wgdesk.proto.timerqueue import TimerQueue
from wgdesk.proto.timers import JITTER_STEPS

_NONCE_PREFIX = bytes(4)
_PADDING = bytes(16)
_TRANSPORT_HEAD = b"\x04\x00\x00\x00"
_unpack_transport = messages.TRANSPORT_HEADER.unpack_from
_unpack_index = messages.INDEX.unpack_from
_JITTERS = struct.Struct("<32H")


def _expand(item: bytes | Run) -> list[bytes] | tuple[bytes]:
    """The packets of an output queue entry: bytes, or a run of the compiled data path."""
    return (item,) if isinstance(item, bytes) else item.packets()


def _source_key(addr: Endpoint) -> bytes:
    try:
        return ipaddress.ip_address(addr[0]).packed
    except ValueError:
        return addr[0].encode("utf-8", "replace")


_BY_ENDPOINT = frozenset({DropReason.INVALID_MAC1, DropReason.INVALID_HANDSHAKE, DropReason.UNKNOWN_INDEX})
"""Drops without a known peer that are still counted for the peer at their source: a handshake message
for another public key (mac1), one from a static key we do not know, or for a session we do not have."""


def _counters(counts: Counter[str]) -> PeerCounters:
    return PeerCounters.of(counts, {k[5:]: n for k, n in counts.items() if k.startswith("drop:") and n})


class Device:
    """A WireGuard interface without I/O: peers, keys, handshakes, timers, the data path.

    Besides the inputs and outputs of docs/architecture.md, the engine may set:

    * `mtu` — the TUN MTU; padding never exceeds it (default 1420);
    * `pending_handshakes` — how many handshake messages it has queued; at `under_load_threshold`
      (default 128) the device is under load and demands cookies (mac2). The rate limiter also puts
      the device under load for a second when one source exceeds 20 handshakes/s (burst 5).
    """

    __slots__ = (
        "_at_endpoint",
        "_dropped",
        "_dst_cache",
        "_events",
        "_handshake_index",
        "_jitters",
        "_keypair_index",
        "_src_cache",
        "_under_load_until",
        "allowed_ips",
        "cookie_checker",
        "datapath",
        "fwmark",
        "identity",
        "incoming",
        "listen_port",
        "mtu",
        "outgoing",
        "peers",
        "pending_handshakes",
        "rate_limiter",
        "rng",
        "timer_queue",
        "under_load_threshold",
        "wall_clock",
    )

    def __init__(
        self,
        rng: Callable[[int], bytes],
        wall_clock: Callable[[], float],
        datapath: DataPath | None = None,
    ) -> None:
        self.rng = rng
        self.datapath = datapath
        self.wall_clock = wall_clock
        self.identity: StaticIdentity | None = None
        self.listen_port = 0
        self.fwmark = 0
        self.mtu = DEFAULT_MTU
        self.pending_handshakes = 0
        self.under_load_threshold = UNDER_LOAD_QUEUE_SIZE
        self._under_load_until = float("-inf")
        self.peers: dict[bytes, Peer] = {}
        self.allowed_ips: AllowedIPs[Peer] = AllowedIPs()
        self.cookie_checker = CookieChecker(rng)
        self.rate_limiter = RateLimiter()
        self.outgoing: list[tuple[bytes, Endpoint]] = []
        self.incoming: list[bytes] = []
        self._events: deque[Event] = deque(maxlen=MAX_EVENTS)
        self._dropped: Counter[str] = Counter()
        self._at_endpoint: dict[Endpoint, Peer] = {}
        """Which peer each current endpoint belongs to (the latest to take it), for `_peer_at`."""
        self._handshake_index: dict[int, Peer] = {}
        self._keypair_index: dict[int, Keypair] = {}
        self._dst_cache: tuple[bytes, Peer | None] = (b"", None)
        self._src_cache: tuple[bytes, Peer | None] = (b"", None)
        self._jitters: list[int] = []
        self.timer_queue: TimerQueue[Peer] = TimerQueue()

    # --- outputs --------------------------------------------------------------------------------------

    def datagrams_to_send(self) -> list[tuple[bytes, Endpoint]]:
        """UDP payloads and their destinations, oldest first; empties the queue."""
        out = self.outgoing
        self.outgoing = []
        if self.datapath is not None:
            return [(d, e) for item, e in out for d in _expand(item)]
        return out

    def packets_to_tun(self) -> list[bytes]:
        """Decrypted IP packets for the TUN device; empties the queue."""
        out = self.incoming
        self.incoming = []
        if self.datapath is not None:
            return [p for item in out for p in _expand(item)]
        return out

    def take_datagrams(self) -> list[tuple[bytes | Run, Endpoint]]:
        """Like `datagrams_to_send`, but runs sealed by the compiled data path stay runs (the
        engine hands them to its UDP send as they are). Send them before the batch is refilled."""
        out = self.outgoing
        self.outgoing = []
        return out  # type: ignore[return-value]

    def take_packets_to_tun(self) -> list[bytes | Run]:
        """Like `packets_to_tun`, but opened runs stay runs (for the compiled TUN write)."""
        out = self.incoming
        self.incoming = []
        return out  # type: ignore[return-value]

    def get_timer(self) -> float | None:
        """The earliest monotonic deadline at which `handle_timer` must be called, or None.

        O(k log n) for k peers touched since the last call (timerqueue.py), not O(peers).
        """
        return self.timer_queue.earliest()

    def next_event(self) -> Event | None:
        """The oldest pending event, or None."""
        return self._events.popleft() if self._events else None

    def snapshot(self, now: float) -> DeviceSnapshot:
        """Everything UAPI `get` reports."""
        identity = self.identity
        peers = tuple(
            PeerSnapshot(
                public_key=p.public_key,
                preshared_key=None if p.handshake.preshared_key == NO_KEY else p.handshake.preshared_key,
                endpoint=p.endpoint,
                persistent_keepalive=p.persistent_keepalive,
                allowed_ips=tuple(self.allowed_ips.entries(p)),
                last_handshake=p.last_handshake,
                rx_bytes=p.rx_bytes,
                tx_bytes=p.tx_bytes,
                protocol_version=1,
                counters=_counters(p.counts),
            )
            for p in self.peers.values()
        )
        return DeviceSnapshot(
            private_key=identity.private_key if identity else None,
            public_key=identity.public_key if identity else None,
            listen_port=self.listen_port,
            fwmark=self.fwmark,
            peers=peers,
            dropped=dict(self._dropped),
        )

    def set_listen_port(self, port: int) -> None:
        """Record the port the engine actually bound (after `listen_port = 0`)."""
        if not 0 <= port <= 0xFFFF:
            raise ConfigurationError.invalid(f"listen port {port} is not in 0..65535")
        self.listen_port = port

    # --- bookkeeping used by peers ---------------------------------------------------------------------

    def emit(self, event: Event) -> None:
        """Queue `event` and count it for its peer (`PeerCounters`); events are rare (handshakes,
        roaming), so this is off the data path."""
        self._events.append(event)
        if isinstance(event, events.HandshakeInitiationSent):
            self._count(event.public_key, "initiations_sent")
        elif isinstance(event, events.HandshakeCompleted):
            if event.initiator:  # completed by an authenticated response to our initiation
                self._count(event.public_key, "responses_received")
        elif isinstance(event, events.HandshakeResponseSent):
            self._count(event.public_key, "responses_sent")
        elif isinstance(event, events.CookieReplyReceived):
            self._count(event.public_key, "cookie_replies_received")
        elif isinstance(event, events.CookieReplySent):
            peer = self._peer_at(event.endpoint)
            if peer is not None:
                peer.counts["cookie_replies_sent"] += 1

    def drop(
        self, reason: DropReason, public_key: bytes | None = None, endpoint: Endpoint | None = None
    ) -> None:
        self._dropped[reason] += 1
        self._events.append(events.PacketDropped(reason, public_key, endpoint))
        if public_key is not None:
            self._count(public_key, "drop:" + reason)
        elif endpoint is not None and reason in _BY_ENDPOINT:
            peer = self._peer_at(endpoint)
            if peer is not None:
                peer.counts["drop:" + reason] += 1

    def drop_many(self, reason: DropReason, count: int, public_key: bytes | None = None) -> None:
        self._dropped[reason] += count
        self._events.append(events.PacketDropped(reason, public_key, None))
        if public_key is not None:
            self._count(public_key, "drop:" + reason, count)

    def _count(self, public_key: bytes, name: str, count: int = 1) -> None:
        peer = self.peers.get(public_key)
        if peer is not None:
            peer.counts[name] += count

    def endpoint_moved(self, peer: Peer, old: Endpoint | None, new: Endpoint) -> None:
        """Keep `_peer_at` current: `peer`'s endpoint changes from `old` to `new` (a roam or a `set`)."""
        if old is not None and self._at_endpoint.get(old) is peer:
            del self._at_endpoint[old]
        self._at_endpoint[new] = peer

    def _peer_at(self, endpoint: Endpoint) -> Peer | None:
        """The peer whose current endpoint is `endpoint`, for what arrives from it unauthenticated: one
        dict lookup, so a flood of junk handshakes costs no scan of the peers."""
        return self._at_endpoint.get(endpoint)

    def jitter(self) -> float:
        """A timer jitter uniform-ish in [0, 333 ms]; randomness is drawn 32 jitters at a time."""
        jitters = self._jitters
        if not jitters:
            jitters.extend(_JITTERS.unpack(self.rng(_JITTERS.size)))
        return (jitters.pop() % JITTER_STEPS) / 1000.0

    def new_index(self) -> int:
        """A random nonzero 32-bit sender index not in use on this device."""
        while True:
            index = int.from_bytes(self.rng(4), "little")
            # 0 means "none" in Handshake.local_index
            if index and index not in self._handshake_index and index not in self._keypair_index:
                return index

    def index_handshake(self, index: int, peer: Peer) -> None:
        self._handshake_index[index] = peer

    def unindex_handshake(self, peer: Peer) -> None:
        index = peer.handshake.local_index
        if index and self._handshake_index.get(index) is peer:
            del self._handshake_index[index]

    def index_keypair(self, keypair: Keypair) -> None:
        self._keypair_index[keypair.local_index] = keypair

    def unindex_keypair(self, keypair: Keypair) -> None:
        """Drop a keypair for good: it leaves the index and its keys are wiped."""
        if self._keypair_index.get(keypair.local_index) is keypair:
            del self._keypair_index[keypair.local_index]
        keypair.wipe()

    # --- configuration --------------------------------------------------------------------------------

    def apply(self, change: DeviceChange, now: float) -> None:
        """Apply a UAPI `set` request. Validates everything first; raises `ConfigurationError`."""
        self._validate(change)
        if change.private_key is not None:
            self._set_private_key(change.private_key, now)
        if change.listen_port is not None:
            self.listen_port = change.listen_port
        if change.fwmark is not None:
            self.fwmark = change.fwmark
        if change.replace_peers:
            for peer in list(self.peers.values()):
                self._remove_peer(peer)
        for pc in change.peers:
            self._apply_peer(pc, now)
        self._dst_cache = (b"", None)
        self._src_cache = (b"", None)

    @staticmethod
    def _validate(change: DeviceChange) -> None:
        if change.private_key is not None and len(change.private_key) != KEY_SIZE:
            raise ConfigurationError.invalid("private_key must be 32 bytes")
        if change.listen_port is not None and not 0 <= change.listen_port <= 0xFFFF:
            raise ConfigurationError.invalid(f"listen_port {change.listen_port} is not in 0..65535")
        if change.fwmark is not None and not 0 <= change.fwmark <= 0xFFFFFFFF:
            raise ConfigurationError.invalid(f"fwmark {change.fwmark} is not a 32-bit value")
        for pc in change.peers:
            if len(pc.public_key) != KEY_SIZE:
                raise ConfigurationError.invalid("public_key must be 32 bytes")
            if pc.preshared_key is not None and len(pc.preshared_key) != KEY_SIZE:
                raise ConfigurationError.invalid("preshared_key must be 32 bytes")
            pk = pc.persistent_keepalive
            if pk is not None and not 0 <= pk <= MAX_PERSISTENT_KEEPALIVE:
                raise ConfigurationError.invalid(f"persistent_keepalive_interval {pk} is not in 0..65535")
            if pc.endpoint is not None and not 0 <= pc.endpoint[1] <= 0xFFFF:
                raise ConfigurationError.invalid(f"endpoint port {pc.endpoint[1]} is not in 0..65535")
            if pc.protocol_version is not None and pc.protocol_version != 1:
                raise ConfigurationError(errno.EPROTO, f"protocol_version {pc.protocol_version} is not 1")

    def _set_private_key(self, private_key: bytes, now: float) -> None:
        identity = None if private_key == NO_KEY else StaticIdentity.from_private_key(private_key)
        current = self.identity
        if identity == current:
            return
        if identity is not None:
            own = self.peers.get(identity.public_key)
            if own is not None:  # a peer with our own public key cannot exist
                self._remove_peer(own)
        self.identity = identity
        self.cookie_checker.init(identity.public_key if identity else None)
        touch = self.timer_queue.touch
        for peer in self.peers.values():
            peer.handshake.precompute(identity)
            peer.expire_current_keypairs()
            touch(peer)

    def _apply_peer(self, pc: PeerChange, now: float) -> None:
        if self.identity is not None and pc.public_key == self.identity.public_key:
            return  # wireguard-go ignores a peer with the device's own public key
        peer = self.peers.get(pc.public_key)
        if pc.remove:
            if peer is not None:
                self._remove_peer(peer)
            return
        if peer is None:
            if pc.update_only:
                return
            peer = Peer(self, pc.public_key)
            self.peers[pc.public_key] = peer
        self.timer_queue.touch(peer)
        if pc.preshared_key is not None:
            peer.handshake.preshared_key = pc.preshared_key
        if pc.endpoint is not None:
            self.endpoint_moved(peer, peer.endpoint, pc.endpoint)
            peer.endpoint = pc.endpoint
        if pc.replace_allowed_ips:
            self.allowed_ips.remove_by_value(peer)
        for net in pc.allowed_ips:
            self.allowed_ips.insert(net, peer)
        turned_on = False
        if pc.persistent_keepalive is not None:
            turned_on = peer.persistent_keepalive == 0 and pc.persistent_keepalive != 0
            peer.persistent_keepalive = pc.persistent_keepalive
        if self.identity is not None:
            if turned_on:
                peer.send_keepalive(now)
            peer.send_staged_packets(now)

    def _remove_peer(self, peer: Peer) -> None:
        peer.zero_and_flush_all()
        peer.timers.stop()
        self.timer_queue.discard(peer)
        self.allowed_ips.remove_by_value(peer)
        del self.peers[peer.public_key]
        if peer.endpoint is not None and self._at_endpoint.get(peer.endpoint) is peer:
            del self._at_endpoint[peer.endpoint]
        self._dst_cache = (b"", None)
        self._src_cache = (b"", None)

    # --- outbound -------------------------------------------------------------------------------------

    def send_packet(self, ip_packet: bytes, now: float) -> None:
        """Route one IP packet read from the TUN to its peer (by destination) and encrypt it."""
        self.send_packets((ip_packet,), now)

    def send_packets(self, packets: Iterable[bytes], now: float) -> None:
        """Batch form of `send_packet`."""
        lookup = self.allowed_ips.lookup
        outgoing = self.outgoing
        cached_dst, cached_peer = self._dst_cache
        touch = self.timer_queue.touched.add
        touched: Peer | None = None
        for packet in packets:
            n = len(packet)
            if n == 0:
                continue
            version = packet[0] >> 4
            if version == 4 and n >= 20:
                dst = packet[16:20]
            elif version == 6 and n >= 40:
                dst = packet[24:40]
            else:
                self.drop(DropReason.INVALID_INNER_PACKET)
                continue
            if dst == cached_dst:
                peer = cached_peer
            else:
                peer = lookup(dst)
                cached_dst, cached_peer = dst, peer
            if peer is None:
                self.drop(DropReason.NO_ROUTE)
                continue
            if self.identity is None:
                self.drop(DropReason.NO_PRIVATE_KEY, peer.public_key)
                continue
            endpoint = peer.endpoint
            if endpoint is None:
                self.drop(DropReason.NO_ENDPOINT, peer.public_key)
                continue
            kp = peer.keypairs.current
            if (
                kp is None
                or peer.staged
                or kp.send_counter >= REKEY_AFTER_MESSAGES
                or now - kp.created >= REKEY_AFTER_TIME
                or n > self.mtu
            ):
                peer.send_data(packet, now)  # staging, handshakes and rekeying live there
                continue
            # The common case, inlined: a fresh keypair, nothing staged (Peer._seal, without rekey checks).
            counter = kp.send_counter
            kp.send_counter = counter + 1
            pad = ((n + 15) & ~15) - n
            if pad:
                if n + pad > self.mtu:
                    pad = self.mtu - n
                if pad:
                    packet = packet + _PADDING[:pad]
            ctr = counter.to_bytes(8, "little")
            out = kp.header_prefix + ctr + kp.send.encrypt(_NONCE_PREFIX + ctr, packet, None)
            peer.tx_bytes += len(out)
            outgoing.append((out, endpoint))
            timers = peer.timers
            if timers.new_handshake is None:
                timers.new_handshake = now + NEW_HANDSHAKE_TIMEOUT + self.jitter()
            timers.send_keepalive = None
            if peer.persistent_keepalive:
                timers.persistent_keepalive = now + peer.persistent_keepalive
            if peer is not touched:
                touch(peer)
                touched = peer
        self._dst_cache = (cached_dst, cached_peer)

    def send_batch(self, batch: Batch, now: float) -> None:
        """`send_packets` over a batch of the compiled data path (`self.datapath`).

        The batch groups consecutive packets to one destination address into runs; per run this
        makes the decisions the per-packet loop makes (peer, key, endpoint, keypair fresh enough,
        nothing staged) once, has the run sealed in place, and does the bookkeeping once: all
        packets of a batch share `now`, so the outcome is the loop's, packet for packet. Whatever
        that loop would not inline (staging, rekeying, packets past the MTU or malformed, the
        packet that reaches Rekey-After-Messages) goes through `send_packets` itself.
        """
        datapath = self.datapath
        assert datapath is not None
        seal = datapath.seal
        lookup = self.allowed_ips.lookup
        outgoing = self.outgoing
        touch = self.timer_queue.touched.add
        mtu = self.mtu
        for dst, start, end in batch.routes(mtu):
            if dst is None:
                self.send_packets([batch.packet(i) for i in range(start, end)], now)
                continue
            cached_dst, peer = self._dst_cache
            if dst != cached_dst:
                peer = lookup(dst)
                self._dst_cache = (dst, peer)
            if peer is None:
                for _ in range(start, end):
                    self.drop(DropReason.NO_ROUTE)
                continue
            if self.identity is None:
                for _ in range(start, end):
                    self.drop(DropReason.NO_PRIVATE_KEY, peer.public_key)
                continue
            endpoint = peer.endpoint
            if endpoint is None:
                for _ in range(start, end):
                    self.drop(DropReason.NO_ENDPOINT, peer.public_key)
                continue
            kp = peer.keypairs.current
            fast = 0
            if kp is not None and not peer.staged and now - kp.created < REKEY_AFTER_TIME:
                fast = max(0, min(end - start, REKEY_AFTER_MESSAGES - kp.send_counter))
            if fast:
                assert kp is not None
                run = seal(kp.send, batch, start, start + fast, kp.send_counter, mtu, kp.header_prefix)
                kp.send_counter += fast
                peer.tx_bytes += run.nbytes
                outgoing.append((run, endpoint))  # type: ignore[arg-type]
                timers = peer.timers
                if timers.new_handshake is None:
                    timers.new_handshake = now + NEW_HANDSHAKE_TIMEOUT + self.jitter()
                timers.send_keepalive = None
                if peer.persistent_keepalive:
                    timers.persistent_keepalive = now + peer.persistent_keepalive
                touch(peer)
            if start + fast < end:
                self.send_packets([batch.packet(i) for i in range(start + fast, end)], now)

    # --- inbound --------------------------------------------------------------------------------------

    def receive_datagram(self, data: bytes, addr: Endpoint, now: float) -> None:
        """Process one UDP payload received from `addr`."""
        if len(data) >= MESSAGE_TRANSPORT_SIZE and data[:4] == _TRANSPORT_HEAD:
            self.receive_datagrams(((data, addr),), now)
        else:
            self._receive_handshake(data, addr, now)

    def receive_datagrams(self, batch: Iterable[tuple[bytes, Endpoint]], now: float) -> None:
        """Batch form of `receive_datagram`. Handshake messages in the batch count as pending.

        Transport messages are handled inline (this loop is the data path): look up the keypair by
        receiver index, check its age, decrypt, check the replay window, do the peer's bookkeeping,
        and accept the inner packet only if its source address routes back to the same peer.
        """
        items = batch if isinstance(batch, (list, tuple)) else list(batch)
        pending = 0
        for data, _ in items:
            if data[:4] != _TRANSPORT_HEAD:
                pending += 1
        base = self.pending_handshakes
        keypairs = self._keypair_index
        incoming = self.incoming
        cached_src, cached_owner = self._src_cache
        touch = self.timer_queue.touched.add
        touched: Peer | None = None
        for data, addr in items:
            if len(data) < MESSAGE_TRANSPORT_SIZE or data[:4] != _TRANSPORT_HEAD:
                self.pending_handshakes = base + pending
                pending -= 1
                try:
                    self._receive_handshake(data, addr, now)
                finally:
                    self.pending_handshakes = base
                continue
            _, receiver, counter = _unpack_transport(data)
            kp = keypairs.get(receiver)
            if kp is None:
                self.drop(DropReason.UNKNOWN_INDEX, None, addr)
                continue
            peer = kp.peer
            if counter >= REJECT_AFTER_MESSAGES or now - kp.created >= REJECT_AFTER_TIME:
                self.drop(DropReason.KEYPAIR_EXPIRED, peer.public_key, addr)
                continue
            try:
                plaintext = kp.receive.decrypt(_NONCE_PREFIX + data[8:16], data[16:], None)
            except InvalidTag:
                self.drop(DropReason.DECRYPTION_FAILED, peer.public_key, addr)
                continue
            if not kp.replay.check(counter):
                self.drop(DropReason.REPLAYED_COUNTER, peer.public_key, addr)
                continue
            peer.received_transport(kp, addr, len(data), now)
            if peer is not touched:
                touch(peer)
                touched = peer
            n = len(plaintext)
            if n == 0:
                continue  # keepalive
            timers = peer.timers
            if timers.send_keepalive is None:
                timers.send_keepalive = now + KEEPALIVE_TIMEOUT
            else:
                timers.need_another_keepalive = True
            version = plaintext[0] >> 4
            if version == 4 and n >= 20:
                length = (plaintext[2] << 8) | plaintext[3]
                src = plaintext[12:16]
                if length < 20:
                    self.drop(DropReason.INVALID_INNER_PACKET, peer.public_key, addr)
                    continue
            elif version == 6 and n >= 40:
                length = ((plaintext[4] << 8) | plaintext[5]) + 40
                src = plaintext[8:24]
            else:
                self.drop(DropReason.INVALID_INNER_PACKET, peer.public_key, addr)
                continue
            if length > n:
                self.drop(DropReason.INVALID_INNER_PACKET, peer.public_key, addr)
                continue
            if src != cached_src:
                cached_src, cached_owner = src, self.allowed_ips.lookup(src)
            if cached_owner is not peer:
                self.drop(DropReason.SOURCE_NOT_ALLOWED, peer.public_key, addr)
                continue
            incoming.append(plaintext if length == n else plaintext[:length])
        self._src_cache = (cached_src, cached_owner)

    def receive_batch(self, batch: Batch, now: float) -> None:
        """`receive_datagrams` over a batch of the compiled data path (`self.datapath`).

        The batch groups consecutive transport messages to one receiver index from one source
        into runs. Per run: the keypair lookup and its age check, then the module opens the run in
        place (counter limit, authentication, replay window, inner header) and reports. When every
        packet became a data packet with one inner source, the peer's bookkeeping and the
        allowed-IPs check happen once; otherwise the states are walked one by one with the exact
        steps of the per-packet loop. Any other datagram goes to the handshake path on its own.
        """
        datapath = self.datapath
        assert datapath is not None
        pending, runs = batch.sessions()
        base = self.pending_handshakes
        keypairs = self._keypair_index
        incoming = self.incoming
        touch = self.timer_queue.touched.add
        for receiver, addr, start, end in runs:
            if receiver < 0:
                self.pending_handshakes = base + pending
                pending -= 1
                try:
                    self._receive_handshake(batch.packet(start), addr, now)
                finally:
                    self.pending_handshakes = base
                continue
            kp = keypairs.get(receiver)
            if kp is None:
                for _ in range(start, end):
                    self.drop(DropReason.UNKNOWN_INDEX, None, addr)
                continue
            peer = kp.peer
            if now - kp.created >= REJECT_AFTER_TIME:
                for _ in range(start, end):
                    self.drop(DropReason.KEYPAIR_EXPIRED, peer.public_key, addr)
                continue
            run, auth_bytes, _, nonempty, source = datapath.open(kp.receive, kp.replay, batch, start, end)
            timers = peer.timers
            if source is not None:
                peer.received_transport(kp, addr, auth_bytes, now)
                touch(peer)
                if timers.send_keepalive is None:
                    timers.send_keepalive = now + KEEPALIVE_TIMEOUT
                    if nonempty > 1:
                        timers.need_another_keepalive = True
                else:
                    timers.need_another_keepalive = True
                cached_src, owner = self._src_cache
                if source != cached_src:
                    owner = self.allowed_ips.lookup(source)
                    self._src_cache = (source, owner)
                if owner is peer:
                    incoming.append(run)  # type: ignore[arg-type]
                else:
                    for _ in range(start, end):
                        self.drop(DropReason.SOURCE_NOT_ALLOWED, peer.public_key, addr)
                continue
            self._receive_states(batch, start, end, kp, addr, now)
            incoming.append(run)  # type: ignore[arg-type]

    def _receive_states(
        self, batch: Batch, start: int, end: int, kp: Keypair, addr: Endpoint, now: float
    ) -> None:
        """The per-packet steps of `receive_datagrams` after decryption, over opened states."""
        datapath = self.datapath
        assert datapath is not None
        peer = kp.peer
        timers = peer.timers
        touch = self.timer_queue.touched.add
        for i in range(start, end):
            state = batch.status(i)
            if state == datapath.ST_EXPIRED:
                self.drop(DropReason.KEYPAIR_EXPIRED, peer.public_key, addr)
                continue
            if state == datapath.ST_BADTAG:
                self.drop(DropReason.DECRYPTION_FAILED, peer.public_key, addr)
                continue
            if state == datapath.ST_REPLAYED:
                self.drop(DropReason.REPLAYED_COUNTER, peer.public_key, addr)
                continue
            peer.received_transport(kp, addr, batch.wire_len(i), now)
            touch(peer)
            if state == datapath.ST_KEEPALIVE:
                continue
            if timers.send_keepalive is None:
                timers.send_keepalive = now + KEEPALIVE_TIMEOUT
            else:
                timers.need_another_keepalive = True
            if state != datapath.ST_DATA:
                self.drop(DropReason.INVALID_INNER_PACKET, peer.public_key, addr)
                continue
            src = batch.inner_source(i)
            cached_src, owner = self._src_cache
            if src != cached_src:
                owner = self.allowed_ips.lookup(src) if src is not None else None
                self._src_cache = (src or b"", owner)
            if owner is not peer:
                self.drop(DropReason.SOURCE_NOT_ALLOWED, peer.public_key, addr)
                batch.drop(i)

    def under_load(self, now: float) -> bool:
        """Whether handshakes must carry a valid mac2 (a cookie) right now."""
        if self.pending_handshakes >= self.under_load_threshold:
            self._enter_under_load(now)
            return True
        return now < self._under_load_until

    def _enter_under_load(self, now: float) -> None:
        if now >= self._under_load_until:
            self.emit(events.UnderLoad(now + UNDER_LOAD_AFTER_TIME))
        self._under_load_until = now + UNDER_LOAD_AFTER_TIME

    def _receive_handshake(self, data: bytes, addr: Endpoint, now: float) -> None:
        kind = messages.message_type(data)
        if kind == 0:
            self.drop(DropReason.INVALID_MESSAGE, None, addr)
            return
        identity = self.identity
        if identity is None:
            self.drop(DropReason.NO_PRIVATE_KEY, None, addr)
            return
        if kind == MESSAGE_COOKIE_REPLY_TYPE:
            self._receive_cookie_reply(data, addr, now)
            return
        checker = self.cookie_checker
        if not checker.check_mac1(data):
            self.drop(DropReason.INVALID_MAC1, None, addr)
            return
        key = _source_key(addr)
        under_load = self.under_load(now)
        allowed: bool | None = None
        if not under_load:
            allowed = self.rate_limiter.allow(key, now)
            if not allowed:
                self._enter_under_load(now)
                under_load = True
        if under_load:
            if not checker.check_mac2(data, addr, now):
                sender: int = _unpack_index(data, 4)[0]
                reply = checker.create_reply(data, sender, addr, now)
                self.outgoing.append((reply, addr))
                self.emit(events.CookieReplySent(addr))
                self.drop(DropReason.INVALID_MAC2, None, addr)
                return
            if allowed is None:
                allowed = self.rate_limiter.allow(key, now)
            if not allowed:
                self.drop(DropReason.RATE_LIMITED, None, addr)
                return
        if kind == MESSAGE_INITIATION_TYPE:
            self._receive_initiation(data, addr, identity, now)
        elif kind == MESSAGE_RESPONSE_TYPE:
            self._receive_response(data, addr, identity, now)

    def _receive_initiation(self, data: bytes, addr: Endpoint, identity: StaticIdentity, now: float) -> None:
        msg = messages.parse_initiation(data)
        if msg is None:
            self.drop(DropReason.INVALID_MESSAGE, None, addr)
            return

        def lookup(static: bytes) -> handshake.Handshake | None:
            peer = self.peers.get(static)
            return peer.handshake if peer is not None else None

        consumed = handshake.consume_initiation(msg, identity, lookup)
        if consumed is None:
            self.drop(DropReason.INVALID_HANDSHAKE, None, addr)
            return
        peer = self.peers[consumed.handshake.remote_static]
        verdict = handshake.is_replay_or_flood(consumed, now)
        if verdict == "replay":
            self.drop(DropReason.REPLAYED_INITIATION, peer.public_key, addr)
            return
        if verdict == "flood":
            self.drop(DropReason.INITIATION_FLOOD, peer.public_key, addr)
            return
        self.unindex_handshake(peer)
        handshake.accept_initiation(consumed, msg.sender, now)
        peer.handshake.local_index = 0
        peer.received_authenticated_handshake(addr, len(data), now)
        peer.send_handshake_response(now)

    def _receive_response(self, data: bytes, addr: Endpoint, identity: StaticIdentity, now: float) -> None:
        msg = messages.parse_response(data)
        if msg is None:
            self.drop(DropReason.INVALID_MESSAGE, None, addr)
            return
        peer = self._handshake_index.get(msg.receiver)
        if peer is None or peer.handshake.state != HandshakeState.INITIATION_CREATED:
            self.drop(DropReason.UNKNOWN_INDEX, None, addr)
            return
        if not handshake.consume_response(peer.handshake, msg, identity):
            self.drop(DropReason.INVALID_HANDSHAKE, peer.public_key, addr)
            return
        peer.received_authenticated_handshake(addr, len(data), now)
        peer.begin_symmetric_session(now, initiator=True)
        peer.timers.on_session_derived(now)
        peer.handshake_complete()
        peer.send_keepalive(now)

    def _receive_cookie_reply(self, data: bytes, addr: Endpoint, now: float) -> None:
        reply = messages.parse_cookie_reply(data)
        if reply is None:
            self.drop(DropReason.INVALID_MESSAGE, None, addr)
            return
        peer = self._handshake_index.get(reply.receiver)
        if peer is None:
            kp = self._keypair_index.get(reply.receiver)
            peer = kp.peer if kp is not None else None
        if peer is None:
            self.drop(DropReason.UNKNOWN_INDEX, None, addr)
            return
        if not peer.cookie_generator.consume_reply(reply, now):
            self.drop(DropReason.INVALID_COOKIE_REPLY, peer.public_key, addr)
            return
        self.emit(events.CookieReplyReceived(peer.public_key))
        peer.cookie_reply_received(reply.receiver, now)  # resends the initiation in flight (once)

    # --- timers ---------------------------------------------------------------------------------------

    def handle_timer(self, now: float) -> None:
        """Run every timer action due at `now` (call at or after `get_timer()`), peer by peer in the
        order `peers` lists them. O((k + due) log n), not O(peers)."""
        for peer in self.timer_queue.pop_due(now):
            peer.handle_timer(now)


__all__ = ["Device"]
