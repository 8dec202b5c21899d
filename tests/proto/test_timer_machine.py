"""Timer rules as a hypothesis state machine: two Devices, a lossy network, a fake clock.

Invariants (whitepaper §6): never send on a keypair older than Reject-After-Time or past
Reject-After-Messages; initiations at least Rekey-Timeout apart; at most 20 initiations per attempt
(give up after Rekey-Attempt-Time); keys zeroed by 3 × Reject-After-Time; the responder never sends
on an unconfirmed keypair; the initiator sends a transport message right after consuming a response.
"""

from __future__ import annotations

import hypothesis.strategies as st
from hypothesis import settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from tests.proto.pair import A_ADDR, A_INNER, B_ADDR, B_INNER, ipv4_packet, make_pair
from wgdesk.proto import events, messages
from wgdesk.proto.constants import (
    KEEPALIVE_TIMEOUT,
    MAX_TIMER_HANDSHAKES,
    MESSAGE_INITIATION_SIZE,
    MESSAGE_TRANSPORT_TYPE,
    NEW_HANDSHAKE_TIMEOUT,
    REJECT_AFTER_MESSAGES,
    REJECT_AFTER_TIME,
    REKEY_TIMEOUT,
    REKEY_TIMEOUT_JITTER_MAX,
    ZERO_KEYS_AFTER,
)
from wgdesk.proto.device import Device

NAMES = ("a", "b")
GIVE_UP_HORIZON = (
    2 * KEEPALIVE_TIMEOUT
    + NEW_HANDSHAKE_TIMEOUT
    + (MAX_TIMER_HANDSHAKES + 1) * (REKEY_TIMEOUT + REKEY_TIMEOUT_JITTER_MAX)
)


class TwoDevices(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.p = make_pair(seed=3)
        self.devices: dict[str, Device] = {"a": self.p.a, "b": self.p.b}
        self.inner = {"a": (A_INNER, B_INNER), "b": (B_INNER, A_INNER)}
        self.addr = {"a": A_ADDR, "b": B_ADDR}
        self.inflight: dict[str, list[bytes]] = {"a": [], "b": []}
        self.history: dict[str, list[bytes]] = {"a": [], "b": []}
        self.last_init: dict[str, float] = {}
        self.last_input = self.p.clock.now
        # local indices of sessions each device answered as responder, and those it has received on
        self.responded: dict[str, set[int]] = {"a": set(), "b": set()}
        self.confirmed: dict[str, set[int]] = {"a": set(), "b": set()}

    @property
    def now(self) -> float:
        return self.p.clock.now

    def _collect(self) -> None:
        for name, dev in self.devices.items():
            for data, _dst in dev.datagrams_to_send():
                self._check_outgoing(name, dev, data)
                self.inflight[name].append(data)
                self.history[name].append(data)
            for _ in iter(dev.next_event, None):
                pass

    def _check_outgoing(self, name: str, dev: Device, data: bytes) -> None:
        if len(data) == MESSAGE_INITIATION_SIZE and data[0] == 1:
            last = self.last_init.get(name)
            assert last is None or self.now - last >= REKEY_TIMEOUT
            # Give up: after the last input, at most a keepalive chain (10 s + 10 s), a new-handshake
            # delay (15 s + jitter) and 19 retries (5 s + jitter each) can still produce initiations.
            assert self.now - self.last_input <= GIVE_UP_HORIZON
            self.last_init[name] = self.now
        if data[0] == 2:
            self.responded[name].add(messages.INDEX.unpack_from(data, 4)[0])
        if data[0] == MESSAGE_TRANSPORT_TYPE:
            _, receiver, counter = messages.TRANSPORT_HEADER.unpack_from(data)
            (peer,) = dev.peers.values()
            kps = [k for k in peer.keypairs.all() if k.remote_index == receiver]
            assert kps, "sent on a keypair the device does not hold"
            kp = kps[0]
            assert kp is not peer.keypairs.next, "sent on an unconfirmed (next) keypair"
            if kp.local_index in self.responded[name]:
                assert kp.local_index in self.confirmed[name], "responder sent before key confirmation"
            assert self.now - kp.created < REJECT_AFTER_TIME
            assert counter < REJECT_AFTER_MESSAGES

    def _receive(self, who: str, data: bytes) -> tuple[str, Device]:
        other = "b" if who == "a" else "a"
        receiver = self.devices[other]
        dropped = sum(receiver.snapshot(self.now).dropped.values())
        receiver.receive_datagram(data, self.addr[who], self.now)
        if data[0] == MESSAGE_TRANSPORT_TYPE and sum(receiver.snapshot(self.now).dropped.values()) == dropped:
            self.confirmed[other].add(messages.INDEX.unpack_from(data, 4)[0])
        return other, receiver

    def _advance_to(self, target: float) -> None:
        while True:
            deadlines = [t for t in (self.p.a.get_timer(), self.p.b.get_timer()) if t is not None]
            nxt = min(deadlines, default=None)
            if nxt is None or nxt > target:
                break
            self.p.clock.now = max(self.now, nxt)
            self.p.run_timers()
            self._collect()
        self.p.clock.now = max(self.now, target)

    @rule(dt=st.one_of(st.floats(0.0, 2.0), st.floats(2.0, 200.0)))
    def advance(self, dt: float) -> None:
        self._advance_to(self.now + dt)

    @rule(who=st.sampled_from(NAMES), size=st.integers(0, 1400))
    def send(self, who: str, size: int) -> None:
        self.last_input = self.now
        src, dst = self.inner[who]
        self.devices[who].send_packet(ipv4_packet(src, dst, bytes(size)), self.now)
        self._collect()

    @precondition(lambda self: self.inflight["a"] or self.inflight["b"])
    @rule(who=st.sampled_from(NAMES), lose=st.booleans())
    def deliver(self, who: str, lose: bool) -> None:
        if not self.inflight[who]:
            return
        data = self.inflight[who].pop(0)
        if lose:
            return
        self.last_input = self.now
        _other, receiver = self._receive(who, data)
        out = list(receiver.outgoing)
        confirmed_as_initiator = any(
            isinstance(e, events.HandshakeCompleted) and e.initiator for e in iter(receiver.next_event, None)
        )
        if data[0] == 2 and confirmed_as_initiator:
            # key confirmation: the initiator answers a response with a transport message at once
            assert any(d[0] == MESSAGE_TRANSPORT_TYPE for d, _ in out)
        self._collect()

    @precondition(lambda self: self.history["a"] or self.history["b"])
    @rule(who=st.sampled_from(NAMES), index=st.integers(0, 10_000))
    def replay_old(self, who: str, index: int) -> None:
        self.last_input = self.now
        if not self.history[who]:
            return
        data = self.history[who][index % len(self.history[who])]
        self._receive(who, data)
        self._collect()

    @rule(who=st.sampled_from(NAMES), left=st.integers(0, 3))
    def exhaust_counter(self, who: str, left: int) -> None:
        self.last_input = self.now
        (peer,) = self.devices[who].peers.values()
        kp = peer.keypairs.current
        if kp is not None:
            kp.send_counter = max(kp.send_counter, REJECT_AFTER_MESSAGES - left)

    @invariant()
    def keys_zeroed_within_540_seconds(self) -> None:
        for dev in self.devices.values():
            for peer in dev.peers.values():
                kps = peer.keypairs.all()
                if kps:
                    assert self.now - max(k.created for k in kps) < ZERO_KEYS_AFTER


TwoDevices.TestCase.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
TestTimers = TwoDevices.TestCase
