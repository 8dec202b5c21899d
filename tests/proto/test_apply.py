"""`Device.apply`: UAPI set semantics, validation, low-order keys, snapshot and events."""

from __future__ import annotations

import errno
from ipaddress import ip_network

import pytest

from tests.proto.pair import A_ADDR, A_INNER, B_INNER, SeededRandom, ipv4_packet, make_pair
from tests.proto.test_crypto import LOW_ORDER_POINTS
from wgdesk.proto import events
from wgdesk.proto.changes import NO_KEY, ConfigurationError, DeviceChange, PeerChange
from wgdesk.proto.constants import MAX_EVENTS, MESSAGE_INITIATION_SIZE, MESSAGE_TRANSPORT_SIZE
from wgdesk.proto.device import Device
from wgdesk.proto.events import DropReason
from wgdesk.proto.keys import generate_private_key, public_key

RNG = SeededRandom(21)
K1, K2, K3 = (public_key(generate_private_key(RNG)) for _ in range(3))


def device() -> Device:
    dev = Device(SeededRandom(22), lambda: 1e9)
    dev.apply(DeviceChange(private_key=generate_private_key(RNG)), 0.0)
    return dev


def peer_keys(dev: Device) -> list[bytes]:
    return [p.public_key for p in dev.snapshot(0).peers]


def test_add_update_remove_and_replace_peers() -> None:
    dev = device()
    dev.apply(DeviceChange(peers=(PeerChange(K1), PeerChange(K2, endpoint=("192.0.2.5", 5)))), 0)
    assert peer_keys(dev) == [K1, K2]
    dev.apply(DeviceChange(peers=(PeerChange(K3, update_only=True),)), 0)
    assert peer_keys(dev) == [K1, K2]  # update_only never creates
    dev.apply(DeviceChange(peers=(PeerChange(K1, update_only=True, persistent_keepalive=7),)), 0)
    assert dev.snapshot(0).peers[0].persistent_keepalive == 7
    dev.apply(DeviceChange(peers=(PeerChange(K2, remove=True), PeerChange(K3, remove=True))), 0)
    assert peer_keys(dev) == [K1]
    dev.apply(DeviceChange(replace_peers=True, peers=(PeerChange(K3),)), 0)
    assert peer_keys(dev) == [K3]


def test_allowed_ips_append_replace_and_move_between_peers() -> None:
    dev = device()
    net_a, net_b, net_c = ip_network("10.1.0.0/16"), ip_network("fd00::/64"), ip_network("10.2.0.0/24")
    dev.apply(DeviceChange(peers=(PeerChange(K1, allowed_ips=(net_a, net_b)),)), 0)
    dev.apply(DeviceChange(peers=(PeerChange(K1, allowed_ips=(net_c,)),)), 0)
    assert set(dev.snapshot(0).peers[0].allowed_ips) == {net_a, net_b, net_c}
    dev.apply(DeviceChange(peers=(PeerChange(K1, replace_allowed_ips=True, allowed_ips=(net_c,)),)), 0)
    assert dev.snapshot(0).peers[0].allowed_ips == (net_c,)
    dev.apply(DeviceChange(peers=(PeerChange(K2, allowed_ips=(net_c,)),)), 0)  # moves to K2
    by_key = {p.public_key: p.allowed_ips for p in dev.snapshot(0).peers}
    assert by_key == {K1: (), K2: (net_c,)}


def test_preshared_key_set_and_removed() -> None:
    dev = device()
    psk = bytes(range(32))
    dev.apply(DeviceChange(peers=(PeerChange(K1, preshared_key=psk),)), 0)
    assert dev.snapshot(0).peers[0].preshared_key == psk
    dev.apply(DeviceChange(peers=(PeerChange(K1),)), 0)
    assert dev.snapshot(0).peers[0].preshared_key == psk  # None = unchanged
    dev.apply(DeviceChange(peers=(PeerChange(K1, preshared_key=NO_KEY),)), 0)
    assert dev.snapshot(0).peers[0].preshared_key is None


@pytest.mark.parametrize(
    ("change", "code"),
    [
        (DeviceChange(private_key=b"short"), errno.EINVAL),
        (DeviceChange(listen_port=70000), errno.EINVAL),
        (DeviceChange(fwmark=-1), errno.EINVAL),
        (DeviceChange(peers=(PeerChange(b"x" * 31),)), errno.EINVAL),
        (DeviceChange(peers=(PeerChange(K1, preshared_key=b"x"),)), errno.EINVAL),
        (DeviceChange(peers=(PeerChange(K1, persistent_keepalive=65536),)), errno.EINVAL),
        (DeviceChange(peers=(PeerChange(K1, protocol_version=2),)), errno.EPROTO),
    ],
)
def test_invalid_changes_raise_and_apply_nothing(change: DeviceChange, code: int) -> None:
    dev = device()
    before = dev.snapshot(0)
    with pytest.raises(ConfigurationError) as info:
        dev.apply(
            DeviceChange(
                private_key=change.private_key,
                listen_port=change.listen_port,
                fwmark=change.fwmark,
                peers=(PeerChange(K3), *change.peers),
            ),
            0,
        )
    assert info.value.errno == code and info.value.message
    assert dev.snapshot(0) == before


def test_listen_port_and_fwmark_are_stored() -> None:
    dev = device()
    dev.apply(DeviceChange(listen_port=0, fwmark=0x1234), 0)
    assert (dev.listen_port, dev.fwmark) == (0, 0x1234)
    dev.set_listen_port(40404)
    snap = dev.snapshot(0)
    assert (snap.listen_port, snap.fwmark) == (40404, 0x1234)
    with pytest.raises(ConfigurationError):
        dev.set_listen_port(65536)


def test_peer_with_our_own_public_key_is_ignored() -> None:
    dev = device()
    own = dev.snapshot(0).public_key
    assert own is not None
    dev.apply(DeviceChange(peers=(PeerChange(own),)), 0)
    assert peer_keys(dev) == []


@pytest.mark.parametrize("point", LOW_ORDER_POINTS)
def test_low_order_peer_key_never_sends_a_handshake(point: str) -> None:
    dev = device()
    dev.apply(
        DeviceChange(
            peers=(
                PeerChange(
                    bytes.fromhex(point),
                    endpoint=("192.0.2.9", 51820),
                    persistent_keepalive=1,
                    allowed_ips=(ip_network("0.0.0.0/0"),),
                ),
            )
        ),
        0,
    )
    now = 0.0
    for _ in range(30):
        dev.send_packet(ipv4_packet(A_INNER, B_INNER), now)
        dev.handle_timer(now)
        now += 3.0
    assert dev.datagrams_to_send() == []
    assert not any(isinstance(e, events.HandshakeInitiationSent) for e in iter(dev.next_event, None))


def test_removing_the_private_key_stops_handshakes_and_sending() -> None:
    p = make_pair()
    p.a.apply(DeviceChange(private_key=NO_KEY), p.clock.now)
    assert p.a.snapshot(p.clock.now).private_key is None and p.a.snapshot(p.clock.now).public_key is None
    p.a.send_packet(ipv4_packet(A_INNER, B_INNER), p.clock.now)
    assert p.a.datagrams_to_send() == []
    assert p.a.snapshot(p.clock.now).dropped == {DropReason.NO_PRIVATE_KEY: 1}
    # and an initiation towards a keyless device is dropped
    p.b.send_packet(ipv4_packet(B_INNER, A_INNER), p.clock.now)
    (init,) = p.b.datagrams_to_send()
    p.a.receive_datagram(init[0], ("192.0.2.2", 51821), p.clock.now)
    assert p.a.datagrams_to_send() == []


def test_turning_on_persistent_keepalive_sends_at_once() -> None:
    p = make_pair()
    p.a.apply(DeviceChange(peers=(PeerChange(p.b_pub, persistent_keepalive=25),)), p.clock.now)
    assert [len(d) for d, _ in p.a.outgoing] == [MESSAGE_INITIATION_SIZE]
    p.flush()
    assert p.a.peers[p.b_pub].keypairs.current is not None
    p.a.apply(DeviceChange(peers=(PeerChange(p.b_pub, persistent_keepalive=0),)), p.clock.now)
    assert p.a.datagrams_to_send() == []
    p.a.apply(DeviceChange(peers=(PeerChange(p.b_pub, persistent_keepalive=20),)), p.clock.now)
    assert [len(d) for d, _ in p.a.datagrams_to_send()] == [MESSAGE_TRANSPORT_SIZE]  # a keepalive
    p.a.apply(DeviceChange(peers=(PeerChange(p.b_pub, persistent_keepalive=30),)), p.clock.now)
    assert p.a.datagrams_to_send() == []  # it was already on


def test_snapshot_counts_and_latest_handshake_wall_clock() -> None:
    p = make_pair()
    assert p.a.snapshot(p.clock.now).peers[0].last_handshake is None
    p.a.send_packet(ipv4_packet(A_INNER, B_INNER), p.clock.now)
    p.flush()
    snap = p.b.snapshot(p.clock.now).peers[0]
    assert snap.last_handshake == p.clock.wall()
    assert snap.endpoint == A_ADDR and snap.rx_bytes == 148 + 64 and snap.tx_bytes == 92


def test_event_queue_is_bounded_and_drops_oldest() -> None:
    dev = device()
    for i in range(MAX_EVENTS + 10):
        dev.receive_datagram(b"\x09" + bytes(i % 50), ("192.0.2.1", i + 1), 0.0)
    got = list(iter(dev.next_event, None))
    assert len(got) == MAX_EVENTS
    first = got[0]
    assert isinstance(first, events.PacketDropped) and first.endpoint == ("192.0.2.1", 11)
    assert dev.snapshot(0).dropped == {DropReason.INVALID_MESSAGE: MAX_EVENTS + 10}


def test_sender_indices_are_random_unique_and_nonzero() -> None:
    values = iter([0, 0, 7, 7, 7, 9])  # zero and an index in use are skipped

    def rng(n: int) -> bytes:
        return next(values).to_bytes(4, "little") if n == 4 else bytes(n)

    dev = Device(rng, lambda: 0.0)
    first = dev.new_index()
    dev._handshake_index[first] = None  # type: ignore[assignment]
    assert (first, dev.new_index()) == (7, 9)


def test_new_private_key_removes_the_peer_with_that_public_key() -> None:
    dev = device()
    key = generate_private_key(RNG)
    dev.apply(DeviceChange(peers=(PeerChange(public_key(key)), PeerChange(K1))), 0)
    dev.apply(DeviceChange(private_key=key), 0)
    assert peer_keys(dev) == [K1]
