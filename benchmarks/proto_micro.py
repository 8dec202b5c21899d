"""Micro-benchmarks of the sans-I/O core: responder handshakes per second, and µs per 1420-byte
packet through `Device.send_packets` (encapsulate) and `Device.receive_datagrams` (decapsulate).

Run: .venv/bin/python benchmarks/proto_micro.py [--packets N] [--handshakes N]
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import struct
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from wgdesk.proto import Device, DeviceChange, PeerChange
from wgdesk.proto.keys import generate_private_key, public_key

A_ADDR = ("192.0.2.1", 51820)
B_ADDR = ("192.0.2.2", 51821)
MTU = 1420


def ip_packet(size: int, src: str = "10.0.0.1", dst: str = "10.0.0.2") -> bytes:
    header = struct.pack(
        "!BBHHHBBH4s4s",
        0x45, 0, size, 0, 0, 64, 17, 0,
        ipaddress.IPv4Address(src).packed, ipaddress.IPv4Address(dst).packed,
    )  # fmt: skip
    return header + bytes(size - 20)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def wall(self) -> float:
        return 1.7e9 + self.now


def pair(clock: Clock) -> tuple[Device, Device, bytes, bytes]:
    a, b = Device(os.urandom, clock.wall), Device(os.urandom, clock.wall)
    ka, kb = generate_private_key(os.urandom), generate_private_key(os.urandom)
    pa, pb = public_key(ka), public_key(kb)
    a.apply(
        DeviceChange(
            private_key=ka,
            peers=(PeerChange(pb, endpoint=B_ADDR, allowed_ips=(ipaddress.ip_network("10.0.0.2/32"),)),),
        ),
        clock.now,
    )
    b.apply(
        DeviceChange(
            private_key=kb,
            peers=(PeerChange(pa, endpoint=A_ADDR, allowed_ips=(ipaddress.ip_network("10.0.0.1/32"),)),),
        ),
        clock.now,
    )
    return a, b, pa, pb


def bench_handshakes(n: int) -> float:
    clock = Clock()
    a, b, _pa, pb = pair(clock)
    peer = a.peers[pb]
    inits: list[tuple[bytes, tuple[str, int], float]] = []
    for i in range(n):
        clock.now += 0.021  # past the 20 ms per-peer initiation limit; TAI64N advances too
        peer.last_sent_handshake = float("-inf")
        peer.send_handshake_initiation(clock.now, retry=False)
        (msg,) = a.datagrams_to_send()
        src = (f"198.51.{(i >> 8) & 255}.{i & 255}", 40000)  # one source per message: no rate limit
        inits.append((msg[0], src, clock.now))
    start = time.perf_counter()
    for data, src, now in inits:
        b.receive_datagram(data, src, now)
    elapsed = time.perf_counter() - start
    responses = b.datagrams_to_send()
    assert len(responses) == n, f"expected {n} responses, got {len(responses)}"
    return n / elapsed


def bench_data_path(n: int, batch: int) -> tuple[float, float]:
    clock = Clock()
    a, b, _pa, _pb = pair(clock)
    a.send_packet(ip_packet(100), clock.now)
    for _ in range(3):
        for d, _ in a.datagrams_to_send():
            b.receive_datagram(d, A_ADDR, clock.now)
        for d, _ in b.datagrams_to_send():
            a.receive_datagram(d, B_ADDR, clock.now)
    b.packets_to_tun()
    packets = [ip_packet(MTU) for _ in range(batch)]
    rounds = max(1, n // batch)
    # Encapsulate with the output dropped at once, as the engine's socket write does (keeping 100k
    # datagrams alive would measure page faults, not the protocol).
    start = time.perf_counter()
    for _ in range(rounds):
        a.send_packets(packets, clock.now)
        a.datagrams_to_send()
    enc = (time.perf_counter() - start) / (rounds * batch)
    sealed: list[list[tuple[bytes, tuple[str, int]]]] = []
    for _ in range(rounds):
        a.send_packets(packets, clock.now)
        sealed.append(a.datagrams_to_send())
    assert all(len(d) == MTU + 32 for d, _ in sealed[0])
    batches = [[(d, A_ADDR) for d, _ in out] for out in sealed]  # as the engine's recvmmsg hands them over
    got = 0
    start = time.perf_counter()
    for received in batches:
        b.receive_datagrams(received, clock.now)
        got += len(b.packets_to_tun())
    dec = (time.perf_counter() - start) / (rounds * batch)
    assert got == rounds * batch, f"decapsulated {got} of {rounds * batch}"
    return enc * 1e6, dec * 1e6


def bench_raw_aead(n: int) -> float:
    aead = ChaCha20Poly1305(os.urandom(32))
    data = bytes(MTU)
    nonce = bytes(12)
    start = time.perf_counter()
    for _ in range(n):
        aead.encrypt(nonce, data, None)
    return (time.perf_counter() - start) / n * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--packets", type=int, default=100_000)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--handshakes", type=int, default=2_000)
    args = ap.parse_args()
    hs = bench_handshakes(args.handshakes)
    enc, dec = bench_data_path(args.packets, args.batch)
    raw = bench_raw_aead(args.packets)
    print(f"responder handshakes/s:          {hs:10.0f}")
    print(f"encapsulate µs/packet ({MTU} B): {enc:10.2f}   (batch {args.batch})")
    print(f"decapsulate µs/packet ({MTU} B): {dec:10.2f}   (batch {args.batch})")
    print(f"raw ChaCha20-Poly1305 µs/{MTU} B: {raw:9.2f}   (lower bound)")
    gbit = MTU * 8 / (max(enc, dec) * 1e-6) / 1e9
    print(f"single-core ceiling of the slower path: {gbit:.2f} Gbit/s of inner packets")


if __name__ == "__main__":
    main()
