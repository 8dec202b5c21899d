"""A server `Device` with many peers against an oracle that scans every peer for its timers.

The oracle is the same device with `get_timer` and `handle_timer` done by brute force over all
peers (what the device did before its timer queue). Both servers get identical inputs and the same
seeded randomness; real client devices answer them. A hypothesis state machine drives traffic both
ways, losses, batches, clock advances through every deadline, under-load cookies, exhausted
counters and configuration changes (peers added, removed, replaced, endpoint, keepalive and
allowed-IPs changes, the private key changed and removed), and checks after every step that both
servers report the same deadline as a scan of the peers, and emit the very same datagrams, packets
and events: the queue must be invisible.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import hypothesis.strategies as st
from hypothesis import event, settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from tests.proto.pair import Clock, SeededRandom, ipv4_packet
from wgdesk.proto import events
from wgdesk.proto.changes import NO_KEY, DeviceChange, Endpoint, PeerChange
from wgdesk.proto.constants import REJECT_AFTER_MESSAGES
from wgdesk.proto.device import Device
from wgdesk.proto.keys import generate_private_key, public_key

SERVER: Endpoint = ("192.0.2.1", 51820)
SERVER_INNER = "10.0.0.1"
MAX_CLIENTS = 14
KEYS = SeededRandom(404)
SERVER_KEYS = [generate_private_key(KEYS) for _ in range(2)]
CLIENT_KEYS = [generate_private_key(KEYS) for _ in range(MAX_CLIENTS)]


def scan(device: Device) -> float | None:
    """The earliest deadline of any peer: the brute-force oracle."""
    deadlines = [d for p in device.peers.values() if (d := p.timers.next_deadline()) is not None]
    return min(deadlines, default=None)


class ScanningDevice(Device):
    """`Device` with the timer entry points of before the timer queue: a scan of every peer."""

    def get_timer(self) -> float | None:
        return scan(self)

    def handle_timer(self, now: float) -> None:
        for peer in list(self.peers.values()):
            deadline = peer.timers.next_deadline()
            if deadline is not None and deadline <= now:
                peer.handle_timer(now)


def client_addr(i: int) -> Endpoint:
    return (f"192.0.2.{10 + i}", 40000 + i)


def client_inner(i: int) -> str:
    return f"10.0.1.{10 + i}"


@dataclass
class Datagram:
    data: bytes
    src: Endpoint
    to_server: bool
    client: int


class ServerWithManyPeers(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.clock = Clock()
        self.server = Device(SeededRandom(1), self.clock.wall)
        self.oracle = ScanningDevice(SeededRandom(1), self.clock.wall)
        self.clients: list[Device] = []
        self.network: list[Datagram] = []
        self.server_key = 0
        for _ in range(8):
            self._new_client(keepalive=0)
        self._apply(
            DeviceChange(
                private_key=SERVER_KEYS[0],
                listen_port=SERVER[1],
                peers=tuple(self._peer_change(i) for i in range(len(self.clients))),
            )
        )
        for i in range(0, len(self.clients), 2):  # half of the peers start with a session
            self.clients[i].send_packet(ipv4_packet(client_inner(i), SERVER_INNER, b"hi"), self.now)
            self._collect_client(i)
        self.exchange(4)

    # --- plumbing ---------------------------------------------------------------------------------

    @property
    def now(self) -> float:
        return self.clock.now

    def _new_client(self, keepalive: int) -> int:
        i = len(self.clients)
        client = Device(SeededRandom(100 + i), self.clock.wall)
        client.apply(
            DeviceChange(
                private_key=CLIENT_KEYS[i],
                listen_port=client_addr(i)[1],
                peers=(
                    PeerChange(
                        public_key(SERVER_KEYS[0]),
                        endpoint=SERVER,
                        persistent_keepalive=keepalive,
                        allowed_ips=(ipaddress.ip_network(f"{SERVER_INNER}/32"),),
                    ),
                ),
            ),
            self.now,
        )
        self.clients.append(client)
        return i

    def _peer_change(self, i: int, endpoint: bool = True, keepalive: int = 0) -> PeerChange:
        return PeerChange(
            public_key(CLIENT_KEYS[i]),
            endpoint=client_addr(i) if endpoint else None,
            persistent_keepalive=keepalive,
            allowed_ips=(ipaddress.ip_network(f"{client_inner(i)}/32"),),
        )

    def _apply(self, change: DeviceChange) -> None:
        self.server.apply(change, self.now)
        self.oracle.apply(change, self.now)
        self._collect_server()

    def _both(self, call: str, *args: object) -> None:
        getattr(self.server, call)(*args)
        getattr(self.oracle, call)(*args)
        self._collect_server()

    def _collect_server(self) -> None:
        out = self.server.datagrams_to_send()
        assert out == self.oracle.datagrams_to_send()
        assert self.server.packets_to_tun() == self.oracle.packets_to_tun()
        got = list(iter(self.server.next_event, None))
        assert got == list(iter(self.oracle.next_event, None))
        for e in got:
            if isinstance(e, (events.HandshakeCompleted, events.HandshakeGaveUp, events.KeypairExpired)):
                event(type(e).__name__)
        for data, dst in out:
            if dst[0].startswith("192.0.2.") and 10 <= int(dst[0].rsplit(".", 1)[1]) < 10 + MAX_CLIENTS:
                self.network.append(Datagram(data, SERVER, False, int(dst[0].rsplit(".", 1)[1]) - 10))

    def _collect_client(self, i: int) -> None:
        client = self.clients[i]
        for data, _ in client.datagrams_to_send():
            self.network.append(Datagram(data, client_addr(i), True, i))
        client.packets_to_tun()
        list(iter(client.next_event, None))

    def _run_timers_until(self, target: float) -> None:
        """Fire every deadline (server and clients) up to `target`, each exactly at its time."""
        while True:
            deadlines = [(self.server.get_timer(), -1)] + [
                (c.get_timer(), i) for i, c in enumerate(self.clients)
            ]
            armed = [(d, i) for d, i in deadlines if d is not None and d <= target]
            if not armed:
                break
            when = min(d for d, _ in armed)
            self.clock.now = max(self.now, when)
            assert self.server.get_timer() == self.oracle.get_timer() == scan(self.server)
            due = sum(
                1 for p in self.server.peers.values() if (d := p.timers.next_deadline()) and d <= self.now
            )
            event(f"server peers due at once: {min(due, 3)}")
            self._both("handle_timer", self.now)
            for i, c in enumerate(self.clients):
                c.handle_timer(self.now)
                self._collect_client(i)
        self.clock.now = max(self.now, target)

    # --- rules ------------------------------------------------------------------------------------

    @rule(dt=st.one_of(st.floats(0.0, 1.0), st.floats(1.0, 30.0), st.floats(30.0, 200.0)))
    def advance(self, dt: float) -> None:
        self._run_timers_until(self.now + dt)

    @rule(dt=st.floats(0.0, 30.0))
    def jump_without_timers(self, dt: float) -> None:
        """The clock jumps (a suspend); several deadlines fall due in one handle_timer call."""
        self.clock.now += dt
        self._both("handle_timer", self.now)

    @rule(data=st.data(), size=st.integers(0, 200), count=st.integers(1, 3))
    def client_sends(self, data: st.DataObject, size: int, count: int) -> None:
        i = data.draw(st.integers(0, len(self.clients) - 1))
        packet = ipv4_packet(client_inner(i), SERVER_INNER, bytes(size))
        self.clients[i].send_packets([packet] * count, self.now)
        self._collect_client(i)

    @rule(data=st.data(), size=st.integers(0, 200), big=st.booleans())
    def server_sends(self, data: st.DataObject, size: int, big: bool) -> None:
        targets = data.draw(st.lists(st.integers(0, len(self.clients) - 1), min_size=1, max_size=6))
        packets = [ipv4_packet(SERVER_INNER, client_inner(i), bytes(1500 if big else size)) for i in targets]
        self._both("send_packets", packets, self.now)

    @precondition(lambda self: self.network)
    @rule(data=st.data(), lose=st.booleans(), batch=st.integers(1, 8))
    def deliver(self, data: st.DataObject, lose: bool, batch: int) -> None:
        """Deliver (or lose) up to `batch` datagrams: those for the server in one receive_datagrams."""
        picks = sorted(
            data.draw(st.sets(st.integers(0, len(self.network) - 1), min_size=1, max_size=batch)),
            reverse=True,
        )
        taken = [self.network.pop(k) for k in picks][::-1]
        if lose:
            return
        to_server = [(d.data, d.src) for d in taken if d.to_server]
        if to_server:
            self._both("receive_datagrams", to_server, self.now)
        for d in taken:
            if not d.to_server:
                self.clients[d.client].receive_datagram(d.data, d.src, self.now)
                self._collect_client(d.client)

    @precondition(lambda self: self.network)
    @rule(rounds=st.integers(1, 6))
    def exchange(self, rounds: int) -> None:
        """Deliver everything in flight, `rounds` times over (handshakes complete, data flows)."""
        for _ in range(rounds):
            taken, self.network = self.network, []
            to_server = [(d.data, d.src) for d in taken if d.to_server]
            if to_server:
                self._both("receive_datagrams", to_server, self.now)
            for d in taken:
                if not d.to_server:
                    self.clients[d.client].receive_datagram(d.data, d.src, self.now)
                    self._collect_client(d.client)

    @rule(
        data=st.data(),
        kind=st.sampled_from(["add", "remove", "update", "replace", "private_key"]),
        keepalive=st.sampled_from([None, 0, 1, 7, 25]),
        endpoint=st.booleans(),
    )
    def reconfigure(self, data: st.DataObject, kind: str, keepalive: int | None, endpoint: bool) -> None:
        """A UAPI set: add a peer (with a new client), remove one, update one (endpoint, keepalive —
        turning it on sends one at once —, allowed IPs; re-adds a removed one), replace all peers by
        a subset, or change the private key (key 1 makes the clients' handshakes fail, None removes it)."""
        i = data.draw(st.integers(0, len(self.clients) - 1))
        if kind == "add" and len(self.clients) < MAX_CLIENTS:
            i = self._new_client(keepalive=data.draw(st.sampled_from([0, 5, 25])))
            self._apply(DeviceChange(peers=(self._peer_change(i, keepalive=keepalive or 0),)))
        elif kind == "remove":
            self._apply(DeviceChange(peers=(PeerChange(public_key(CLIENT_KEYS[i]), remove=True),)))
        elif kind == "replace":
            keep = data.draw(st.sets(st.integers(0, len(self.clients) - 1), min_size=len(self.clients) // 2))
            self._apply(
                DeviceChange(replace_peers=True, peers=tuple(self._peer_change(k) for k in sorted(keep)))
            )
        elif kind == "private_key":
            which = data.draw(st.sampled_from([0, 1, None]))
            self._apply(DeviceChange(private_key=NO_KEY if which is None else SERVER_KEYS[which]))
        else:
            change = self._peer_change(i, endpoint=endpoint)
            self._apply(
                DeviceChange(
                    peers=(
                        PeerChange(
                            change.public_key,
                            endpoint=change.endpoint,
                            persistent_keepalive=keepalive,
                            replace_allowed_ips=True,
                            allowed_ips=change.allowed_ips,
                        ),
                    )
                )
            )

    @rule(under_load=st.booleans())
    def load(self, under_load: bool) -> None:
        """Under load the server answers initiations with cookie replies (mac2 required)."""
        threshold = 0 if under_load else 128
        self.server.under_load_threshold = threshold
        self.oracle.under_load_threshold = threshold

    @rule(data=st.data(), left=st.integers(0, 3))
    def exhaust_counter(self, data: st.DataObject, left: int) -> None:
        """Near Reject-After-Messages on one peer's current keypair, in both servers."""
        key = public_key(CLIENT_KEYS[data.draw(st.integers(0, len(self.clients) - 1))])
        for dev in (self.server, self.oracle):
            peer = dev.peers.get(key)
            if peer is not None and peer.keypairs.current is not None:
                kp = peer.keypairs.current
                kp.send_counter = max(kp.send_counter, REJECT_AFTER_MESSAGES - left)

    @invariant()
    def same_deadline_as_a_scan(self) -> None:
        assert self.server.get_timer() == self.oracle.get_timer() == scan(self.server)
        assert [p.public_key for p in self.server.peers.values()] == list(self.oracle.peers)


ServerWithManyPeers.TestCase.settings = settings(max_examples=60, stateful_step_count=40, deadline=None)
TestServerWithManyPeers = ServerWithManyPeers.TestCase
