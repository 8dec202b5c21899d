"""Two `Device`s wired back to back with a fake clock: the fixture most proto tests use."""

from __future__ import annotations

import ipaddress
import random
import struct
from dataclasses import dataclass, field

from wgdesk.proto.changes import DeviceChange, Endpoint, PeerChange
from wgdesk.proto.device import Device
from wgdesk.proto.keys import generate_private_key, public_key

A_ADDR: Endpoint = ("192.0.2.1", 51820)
B_ADDR: Endpoint = ("192.0.2.2", 51821)
A_INNER = "10.0.0.1"
B_INNER = "10.0.0.2"


class SeededRandom:
    """A deterministic `rng(n) -> bytes` for tests."""

    def __init__(self, seed: int) -> None:
        self._r = random.Random(seed)

    def __call__(self, n: int) -> bytes:
        return self._r.randbytes(n)


@dataclass
class Clock:
    """Monotonic `now` and a wall clock that moves with it."""

    now: float = 1000.0
    wall_offset: float = 1_700_000_000.0

    def wall(self) -> float:
        return self.now + self.wall_offset


def ipv4_packet(src: str, dst: str, payload: bytes = b"", proto: int = 17) -> bytes:
    """A minimal IPv4 packet (checksum left zero; the protocol core does not look at it)."""
    total = 20 + len(payload)
    return (
        struct.pack(
            "!BBHHHBBH4s4s",
            0x45,
            0,
            total,
            0,
            0,
            64,
            proto,
            0,
            ipaddress.IPv4Address(src).packed,
            ipaddress.IPv4Address(dst).packed,
        )
        + payload
    )


def ipv6_packet(src: str, dst: str, payload: bytes = b"") -> bytes:
    return (
        struct.pack(
            "!IHBB16s16s",
            6 << 28,
            len(payload),
            17,
            64,
            ipaddress.IPv6Address(src).packed,
            ipaddress.IPv6Address(dst).packed,
        )
        + payload
    )


@dataclass
class Pair:
    """Devices `a` and `b` configured as each other's peer, with a shared clock."""

    clock: Clock
    a: Device
    b: Device
    a_key: bytes
    b_key: bytes
    a_pub: bytes = field(init=False)
    b_pub: bytes = field(init=False)

    def __post_init__(self) -> None:
        self.a_pub = public_key(self.a_key)
        self.b_pub = public_key(self.b_key)

    def advance(self, seconds: float) -> None:
        self.clock.now += seconds

    def flush(self, *, a_from: Endpoint = A_ADDR, b_from: Endpoint = B_ADDR, rounds: int = 10) -> int:
        """Deliver every queued datagram until both queues are empty; returns how many were delivered."""
        delivered = 0
        for _ in range(rounds):
            out_a = self.a.datagrams_to_send()
            out_b = self.b.datagrams_to_send()
            if not out_a and not out_b:
                break
            for data, _dst in out_a:
                self.b.receive_datagram(data, a_from, self.clock.now)
            for data, _dst in out_b:
                self.a.receive_datagram(data, b_from, self.clock.now)
            delivered += len(out_a) + len(out_b)
        return delivered

    def run_timers(self) -> None:
        self.a.handle_timer(self.clock.now)
        self.b.handle_timer(self.clock.now)


def make_pair(
    seed: int = 1,
    psk: bytes | None = None,
    a_endpoint: bool = True,
    b_endpoint: bool = True,
    keepalive: int = 0,
) -> Pair:
    rng = SeededRandom(seed)
    clock = Clock()
    a = Device(SeededRandom(seed * 7 + 1), clock.wall)
    b = Device(SeededRandom(seed * 7 + 2), clock.wall)
    a_key = generate_private_key(rng)
    b_key = generate_private_key(rng)
    pair = Pair(clock, a, b, a_key, b_key)
    a.apply(
        DeviceChange(
            private_key=a_key,
            listen_port=A_ADDR[1],
            peers=(
                PeerChange(
                    public_key=pair.b_pub,
                    preshared_key=psk,
                    endpoint=B_ADDR if a_endpoint else None,
                    persistent_keepalive=keepalive,
                    allowed_ips=(ipaddress.ip_network(f"{B_INNER}/32"), ipaddress.ip_network("fd00::2/128")),
                ),
            ),
        ),
        clock.now,
    )
    b.apply(
        DeviceChange(
            private_key=b_key,
            listen_port=B_ADDR[1],
            peers=(
                PeerChange(
                    public_key=pair.a_pub,
                    preshared_key=psk,
                    endpoint=A_ADDR if b_endpoint else None,
                    allowed_ips=(ipaddress.ip_network(f"{A_INNER}/32"), ipaddress.ip_network("fd00::1/128")),
                ),
            ),
        ),
        clock.now,
    )
    return pair


def established(seed: int = 11) -> tuple[Pair, list[bytes]]:
    """A pair after a handshake and some traffic (queues and events emptied); returns every datagram a
    sent to b (initiation, data, keepalive), for tests that replay or mutate real messages."""
    p = make_pair(seed=seed)
    a_to_b: list[bytes] = []
    p.a.send_packet(ipv4_packet(A_INNER, B_INNER, b"x" * 40), p.clock.now)
    for _ in range(4):
        out_a = p.a.datagrams_to_send()
        a_to_b.extend(d for d, _ in out_a)
        for d, _ in out_a:
            p.b.receive_datagram(d, A_ADDR, p.clock.now)
        for d, _ in p.b.datagrams_to_send():
            p.a.receive_datagram(d, B_ADDR, p.clock.now)
    p.b.packets_to_tun()
    p.a.packets_to_tun()
    list(iter(p.b.next_event, None))
    return p, a_to_b
