"""Differential test: the compiled data path against the pure-Python reference.

Two worlds with identical seeds — devices a and b on the pure path, and on the compiled path —
are driven by one random script: batches of IP packets (both families, empty, malformed, past the
MTU, maximum size, sources the peer may not use, unroutable), delivered with reordering,
duplicates (replays), truncation, bit flips, ciphertexts under a wrong key, unknown indices, time
steps across Rekey-After-Time and Reject-After-Time (a rekey in the middle of a batch), send
counters placed next to Rekey-After-Messages and Reject-After-Messages, and timers. After every
step the datagrams, the packets for the TUN, the events, the snapshots (rx/tx bytes, drops) and the
next timer must be identical.
"""

from __future__ import annotations

import os
import random
from types import ModuleType

import pytest
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from tests.proto.pair import A_ADDR, A_INNER, B_ADDR, B_INNER, Pair, ipv4_packet, ipv6_packet, make_pair
from wgdesk.proto.constants import REJECT_AFTER_MESSAGES, REKEY_AFTER_MESSAGES
from wgdesk.proto.device import Device

SEEDS = range(int(os.environ.get("WGDESK_DIFFERENTIAL_SEEDS", "40")))
STEPS = 60


def with_datapath(pair: Pair, fastpath: ModuleType | None) -> Pair:
    for device in (pair.a, pair.b):
        device.datapath = fastpath
    return pair


def inner_packet(rng: random.Random, src: str, dst: str, mtu: int) -> bytes:
    kind = rng.random()
    if kind < 0.04:
        return b""
    if kind < 0.08:
        return bytes([rng.choice((0x00, 0x50, 0x45, 0x60))]) + rng.randbytes(rng.randrange(0, 50))
    size = rng.choice((0, 1, 15, 16, 17, 100, 1000, mtu - 40, mtu - 20, mtu - 19, mtu, mtu + 1, 1500))
    size = max(0, min(size, 4000))
    if kind < 0.5:
        packet = ipv4_packet(src, dst, rng.randbytes(max(0, size - 20)))
        if rng.random() < 0.05:  # total length field larger than the packet: invalid inner packet
            packet = packet[:2] + (len(packet) + 5).to_bytes(2, "big") + packet[4:]
        if rng.random() < 0.05:  # trailing bytes after the IP packet: trimmed on receive
            packet += b"\x00" * rng.randrange(1, 9)
        return packet
    v6 = {A_INNER: "fd00::1", B_INNER: "fd00::2"}
    return ipv6_packet(v6.get(src, "fd00::99"), v6.get(dst, "fd00::77"), rng.randbytes(max(0, size - 40)))


class World:
    """One pair of devices on one data path."""

    def __init__(self, seed: int, fastpath: ModuleType | None) -> None:
        self.fastpath = fastpath
        self.pair = with_datapath(make_pair(seed, psk=b"\x07" * 32 if seed % 3 == 0 else None), fastpath)

    def device(self, side: str) -> Device:
        return self.pair.a if side == "a" else self.pair.b

    def send(self, side: str, packets: list[bytes]) -> None:
        device = self.device(side)
        if self.fastpath is None:
            device.send_packets(packets, self.pair.clock.now)
            return
        batch = self.fastpath.Packets()
        for packet in packets:
            batch.append(packet)
        device.send_batch(batch, self.pair.clock.now)

    def receive(self, side: str, datagrams: list[tuple[bytes, tuple[str, int]]]) -> None:
        device = self.device(side)
        if self.fastpath is None:
            device.receive_datagrams(datagrams, self.pair.clock.now)
            return
        batch = self.fastpath.Packets()
        for data, addr in datagrams:
            batch.append_datagram(data, addr)
        device.receive_batch(batch, self.pair.clock.now)

    def outputs(self, side: str) -> tuple[object, ...]:
        device = self.device(side)
        events = []
        while (event := device.next_event()) is not None:
            events.append(event)
        snapshot = device.snapshot(self.pair.clock.now)
        # internal state too: timers, counters and keypairs of every peer
        state = [
            (
                tuple(getattr(peer.timers, name) for name in type(peer.timers).__slots__ if name != "order"),
                [(kp.send_counter, kp.local_index, kp.created) for kp in peer.keypairs.all()],
                len(peer.staged),
            )
            for peer in device.peers.values()
        ]
        return (
            state,
            device.datagrams_to_send(),
            device.packets_to_tun(),
            events,
            snapshot,
            device.get_timer(),
        )


def mutate(rng: random.Random, datagrams: list[bytes]) -> list[bytes]:
    """Reorder, replay, truncate, corrupt, re-encrypt under a wrong key, or invent datagrams."""
    out = list(datagrams)
    if out and rng.random() < 0.3:
        rng.shuffle(out)
    if out and rng.random() < 0.3:
        for _ in range(rng.randrange(1, 4)):
            out.insert(rng.randrange(len(out) + 1), rng.choice(datagrams))
    for i in range(len(out)):
        r = rng.random()
        data = out[i]
        if r < 0.03:
            out[i] = data[: rng.randrange(0, len(data) + 1)]
        elif r < 0.06 and len(data) > 16:
            j = rng.randrange(len(data))
            out[i] = data[:j] + bytes([data[j] ^ (1 << rng.randrange(8))]) + data[j + 1 :]
        elif r < 0.08 and len(data) >= 32 and data[0] == 4:
            wrong = ChaCha20Poly1305(rng.randbytes(32))
            plain = rng.randbytes(len(data) - 32)
            out[i] = data[:16] + wrong.encrypt(b"\0" * 4 + data[8:16], plain, None)
        elif r < 0.09:
            out[i] = b"\x04\0\0\0" + rng.randbytes(rng.randrange(0, 80))
    if rng.random() < 0.05:
        out.append(rng.randbytes(rng.randrange(0, 200)))
    return out


def step(rng: random.Random, worlds: list[World]) -> None:
    action = rng.random()
    clock_step = 0.0
    if action < 0.45:
        side = rng.choice("ab")
        src, dst = (A_INNER, B_INNER) if side == "a" else (B_INNER, A_INNER)
        packets = []
        for _ in range(rng.randrange(1, 40)):
            p_dst = dst if rng.random() < 0.93 else "10.9.9.9"
            p_src = src if rng.random() < 0.95 else "10.0.0.77"
            packets.append(inner_packet(rng, p_src, p_dst, worlds[0].device(side).mtu))
        for world in worlds:
            world.send(side, packets)
    elif action < 0.75:
        # deliver what each side has queued, mutated the same way in both worlds
        for side, other, addr in (("a", "b", A_ADDR), ("b", "a", B_ADDR)):
            state = rng.getstate()
            for world in worlds:
                rng.setstate(state)
                queued = [d for d, _ in world.device(side).datagrams_to_send()]
                sources = [addr if rng.random() < 0.97 else (addr[0], addr[1] + 1) for _ in queued]
                delivered = mutate(rng, queued)
                sources += [addr] * (len(delivered) - len(sources))
                world.receive(other, list(zip(delivered, sources, strict=False)))
    elif action < 0.85:
        clock_step = rng.choice((0.01, 0.5, 5.1, 10.5, 60.0, 119.0, 121.0, 170.0, 181.0))
    elif action < 0.92:
        limit = rng.choice((REKEY_AFTER_MESSAGES, REJECT_AFTER_MESSAGES))
        gap = rng.randrange(0, 20)
        side = rng.choice("ab")
        for world in worlds:
            kp = world.device(side).peers[next(iter(world.device(side).peers))].keypairs.current
            if kp is not None:
                kp.send_counter = max(0, limit - gap)
    else:
        for world in worlds:
            world.pair.run_timers()
    if clock_step:
        for world in worlds:
            world.pair.advance(clock_step)
            world.pair.run_timers()


@pytest.mark.parametrize("seed", SEEDS)
def test_compiled_path_matches_the_reference(seed: int, fastpath: ModuleType) -> None:
    rng = random.Random(seed)
    pure, compiled = World(seed, None), World(seed, fastpath)
    worlds = [pure, compiled]
    # first contact: a handshake and some traffic both ways
    for world in worlds:
        world.send("a", [ipv4_packet(A_INNER, B_INNER, b"hello")])
        world.pair.flush()
    for n in range(STEPS):
        state = rng.getstate()
        step(rng, worlds)
        # the outputs are compared, then fed back as they came (delivery is a step of its own)
        for side in "ab":
            expected = pure.outputs(side)
            got = compiled.outputs(side)
            assert got == expected, f"seed {seed}, step {n} (rng state {hash(state)}), side {side}"
            for world, outputs in ((pure, expected), (compiled, got)):
                world.device(side).outgoing.extend(outputs[1])  # type: ignore[arg-type]
    assert pure.pair.a.snapshot(0).peers[0].rx_bytes or pure.pair.b.snapshot(0).peers[0].rx_bytes
