"""Datagrams into the engine: `proto.Device` (device `b`) with one configured peer (`a`) and an
established session, so fuzz input reaches the transport path and not only the first length check.

An input is a sequence of operations, each ``kind (1 byte) ‖ length (2 bytes LE) ‖ payload``:

0. a raw datagram, from the peer's address or a stranger's (bit 4 of ``kind``);
1. a transport message the peer really encrypted (its current keypair, its next counter) around the
   payload as the inner packet: an authenticated peer sending whatever it likes;
2. a real handshake or transport message (initiation and transport from `a`, an initiation from an
   unknown key, a cookie reply to the initiation `b` has in flight) with bytes flipped:
   ``index, (position, xor)*``;
3. time passes (payload[0] / 2 seconds, up to 127.5 s) and both devices run their timers;
4. a batch for `receive_datagrams`: ``(length, bytes)*``;
5. a packet from b's TUN (`send_packet`), then both devices exchange what they have queued.

Invariants: nothing raises (the network never raises); `b` keeps its one peer and its identity; its
counters never go down; every packet `b` hands to its TUN is an IPv4/IPv6 packet of the length its header
says, whose source is inside the peer's allowed IPs; a well-formed inner packet from an allowed source on a
live keypair is delivered (the filter must not drop the legitimate peer); `b` answers one datagram with at
most one datagram of its own (no amplification).
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Callable

from tests.fuzz.targets import check
from tests.proto.pair import (
    A_ADDR,
    A_INNER,
    B_ADDR,
    B_INNER,
    Pair,
    SeededRandom,
    established,
    ipv4_packet,
    make_pair,
)
from wgdesk.proto.changes import DeviceChange, PeerChange
from wgdesk.proto.constants import REJECT_AFTER_TIME
from wgdesk.proto.device import Device
from wgdesk.proto.keys import generate_private_key

MAX_LEN = 2048
STRANGER = ("198.51.100.7", 40000)
ALLOWED = (ipaddress.ip_network(f"{A_INNER}/32"), ipaddress.ip_network("fd00::1/128"))
FLUSHED = 1000
"""After `Pair.flush` b's queue is normally empty; this only bounds it."""
SESSION_MARGIN = 60.0
"""An input starts with a keypair that has at least this long to live (so the transport path is reached)."""


class Harness:
    def __init__(self) -> None:
        self.seed = 0
        self.stranger_initiation = self._stranger_initiation()
        self._new_pair()

    @staticmethod
    def _stranger_initiation() -> bytes:
        p = make_pair(seed=99)
        c = Device(SeededRandom(5), p.clock.wall)
        c_key = generate_private_key(SeededRandom(6))
        c.apply(
            DeviceChange(
                private_key=c_key,
                peers=(
                    PeerChange(
                        public_key=p.b_pub, endpoint=B_ADDR, allowed_ips=(ipaddress.ip_network("0.0.0.0/0"),)
                    ),
                ),
            ),
            p.clock.now,
        )
        c.send_packet(ipv4_packet("10.9.9.9", B_INNER), p.clock.now)
        ((initiation, _),) = c.datagrams_to_send()
        return initiation

    def _new_pair(self) -> None:
        self.seed += 1
        p, samples = established(self.seed)
        self.pair: Pair = p
        (self.peer_b_side,) = p.b.peers.values()
        (self.peer_a_side,) = p.a.peers.values()
        # b starts a handshake that a answers with a cookie reply (a is under load) that is never
        # delivered: b keeps it in flight, so mutated cookie replies reach b's cookie consumer.
        p.advance(6.0)  # past Rekey-Timeout since the handshake above
        self.peer_b_side.send_handshake_initiation(p.clock.now, retry=False)
        ((initiation, _),) = p.b.datagrams_to_send()
        p.a.under_load_threshold = 0
        p.a.receive_datagram(initiation, B_ADDR, p.clock.now)
        p.a.under_load_threshold = 128
        cookie_replies = [d for d, _ in p.a.datagrams_to_send() if d[0] == 3]
        self.samples = [*samples, self.stranger_initiation, *cookie_replies]

    def ensure_session(self) -> None:
        """Keep one pair for as long as its session lives (time passes in inputs; the pair rekeys on its
        own when messages are exchanged): a new pair costs a handshake, far more than an input."""
        kp = self.peer_a_side.keypairs.current
        if kp is None or self.pair.clock.now - kp.created > REJECT_AFTER_TIME - SESSION_MARGIN:
            self._new_pair()

    def deliver(self, data: bytes, addr: tuple[str, int]) -> None:
        p = self.pair
        staged = len(self.peer_b_side.staged)  # a datagram that completes a handshake sends these too
        p.b.receive_datagram(data, addr, p.clock.now)
        self.check_b(max_out=1 + staged)

    def check_b(self, max_out: int) -> None:
        p = self.pair
        b = p.b
        out = b.datagrams_to_send()
        check(len(out) <= max_out, f"b sent {len(out)} datagrams in reply to {max_out} (amplification)")
        for data, dst in out:
            if dst == A_ADDR:
                p.a.receive_datagram(data, B_ADDR, p.clock.now)
        check(list(b.peers) == [p.a_pub], "b's peers changed")
        check(b.identity is not None and b.identity.public_key == p.b_pub, "b's identity changed")
        peer = self.peer_b_side
        check(peer.rx_bytes >= self.rx and peer.tx_bytes >= self.tx, "a counter went down")
        self.rx, self.tx = peer.rx_bytes, peer.tx_bytes
        for packet in b.packets_to_tun():
            self.delivered.append(packet)
            check_inner(packet)

    def transport_from_a(self, plaintext: bytes) -> None:
        p = self.pair
        kp = self.peer_a_side.keypairs.current
        if kp is None:
            return
        counter = kp.send_counter
        kp.send_counter += 1
        ctr = counter.to_bytes(8, "little")
        message = kp.header_prefix + ctr + kp.send.encrypt(bytes(4) + ctr, plaintext, None)
        receiving = p.b._keypair_index.get(kp.remote_index)
        live = receiving is not None and p.clock.now - receiving.created < REJECT_AFTER_TIME
        before = len(self.delivered)
        self.deliver(message, A_ADDR)
        expected = well_formed_from_a(plaintext)
        if live and expected is not None:
            check(
                self.delivered[before:] == [expected],
                f"b dropped a valid packet from its peer: {plaintext.hex()}",
            )

    def one_input(self, data: bytes) -> None:
        self.ensure_session()
        p = self.pair
        self.rx, self.tx = self.peer_b_side.rx_bytes, self.peer_b_side.tx_bytes
        self.delivered: list[bytes] = []
        pos = 0
        while pos + 3 <= len(data):
            kind = data[pos]
            (length,) = struct.unpack_from("<H", data, pos + 1)
            payload = data[pos + 3 : pos + 3 + length]
            pos += 3 + length
            op = kind % 6
            if op == 0:
                self.deliver(payload, A_ADDR if kind & 0x10 else STRANGER)
            elif op == 1:
                self.transport_from_a(payload)
            elif op == 2 and payload:
                message = bytearray(self.samples[payload[0] % len(self.samples)])
                for i in range(1, len(payload) - 1, 2):
                    message[payload[i] % len(message)] ^= payload[i + 1]
                self.deliver(bytes(message), A_ADDR)
            elif op == 3 and payload:
                p.advance(payload[0] / 2)
                p.run_timers()
                p.flush()
                self.check_b(max_out=FLUSHED)
            elif op == 4:
                batch = []
                i = 0
                while i < len(payload):
                    n = payload[i]
                    batch.append((payload[i + 1 : i + 1 + n], A_ADDR))
                    i += 1 + n
                staged = len(self.peer_b_side.staged)
                p.b.receive_datagrams(batch, p.clock.now)
                self.check_b(max_out=len(batch) + staged)
            elif op == 5:
                p.b.send_packet(payload, p.clock.now)
                p.flush()
                self.check_b(max_out=FLUSHED)


def check_inner(packet: bytes) -> None:
    check(len(packet) >= 20, f"b delivered a {len(packet)}-byte packet")
    version = packet[0] >> 4
    if version == 4:
        length = int.from_bytes(packet[2:4], "big")
        src = ipaddress.IPv4Address(packet[12:16])
    else:
        check(version == 6 and len(packet) >= 40, f"b delivered an IPv{version} packet")
        length = int.from_bytes(packet[4:6], "big") + 40
        src = ipaddress.IPv6Address(packet[8:24])
    check(length == len(packet), f"b delivered {len(packet)} bytes of a {length}-byte packet")
    check(
        any(src in net for net in ALLOWED), f"b delivered a packet from {src}, outside the peer's allowed IPs"
    )


def well_formed_from_a(plaintext: bytes) -> bytes | None:
    """The packet b must deliver for this plaintext, or None when dropping it is right."""
    n = len(plaintext)
    if n >= 20 and plaintext[0] >> 4 == 4:
        length = int.from_bytes(plaintext[2:4], "big")
        if 20 <= length <= n and ipaddress.IPv4Address(plaintext[12:16]) in ALLOWED[0]:
            return plaintext[:length]
    if n >= 40 and plaintext[0] >> 4 == 6:
        length = int.from_bytes(plaintext[4:6], "big") + 40
        if length <= n and ipaddress.IPv6Address(plaintext[8:24]) in ALLOWED[1]:
            return plaintext[:length]
    return None


def setup() -> Callable[[bytes], None]:
    return Harness().one_input
