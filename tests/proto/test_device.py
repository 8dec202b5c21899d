"""Two Devices: handshake, data both ways, counters, events, drops."""

from __future__ import annotations

import pytest

from tests.proto.pair import A_ADDR, A_INNER, B_ADDR, B_INNER, ipv4_packet, ipv6_packet, make_pair
from wgdesk.proto import events
from wgdesk.proto.changes import DeviceChange, PeerChange
from wgdesk.proto.constants import (
    MESSAGE_INITIATION_SIZE,
    MESSAGE_RESPONSE_SIZE,
    MESSAGE_TRANSPORT_SIZE,
    REKEY_TIMEOUT,
)
from wgdesk.proto.events import DropReason


def drain(device: object) -> list[events.Event]:
    out = []
    while (event := device.next_event()) is not None:  # type: ignore[attr-defined]
        out.append(event)
    return out


@pytest.mark.parametrize("psk", [None, bytes(range(32))])
def test_handshake_and_data_both_ways(psk: bytes | None) -> None:
    p = make_pair(psk=psk)
    now = p.clock.now
    first = ipv4_packet(A_INNER, B_INNER, b"hello")
    p.a.send_packet(first, now)
    (init,) = p.a.datagrams_to_send()
    assert len(init[0]) == MESSAGE_INITIATION_SIZE and init[1] == B_ADDR
    assert p.a.packets_to_tun() == []
    p.b.receive_datagram(init[0], A_ADDR, now)
    (resp,) = p.b.datagrams_to_send()
    assert len(resp[0]) == MESSAGE_RESPONSE_SIZE and resp[1] == A_ADDR
    p.a.receive_datagram(resp[0], B_ADDR, now)
    (data,) = p.a.datagrams_to_send()  # the staged packet doubles as key confirmation
    assert len(data[0]) == MESSAGE_TRANSPORT_SIZE + 32  # 25 bytes padded to 32
    # the responder has not received on its new keypair yet: it must not send
    p.b.send_packet(ipv4_packet(B_INNER, A_INNER, b"early"), now)
    assert p.b.datagrams_to_send() == []
    p.b.receive_datagram(data[0], A_ADDR, now)
    assert p.b.packets_to_tun() == [first]
    early = p.b.datagrams_to_send()  # staged packet released by the confirmation
    assert len(early) == 1
    p.a.receive_datagram(early[0][0], B_ADDR, now)
    assert p.a.packets_to_tun() == [ipv4_packet(B_INNER, A_INNER, b"early")]

    v6 = ipv6_packet("fd00::2", "fd00::1", b"x" * 100)
    p.b.send_packet(v6, now)
    p.flush()
    assert p.a.packets_to_tun() == [v6]

    sa = p.a.snapshot(now).peers[0]
    sb = p.b.snapshot(now).peers[0]
    assert sa.last_handshake == sb.last_handshake == p.clock.wall()
    assert sa.tx_bytes == sb.rx_bytes and sb.tx_bytes == sa.rx_bytes
    assert sa.tx_bytes == MESSAGE_INITIATION_SIZE + 64
    assert sa.preshared_key == psk
    assert p.a.snapshot(now).dropped == {} and p.b.snapshot(now).dropped == {}
    kinds_a = [type(e) for e in drain(p.a)]
    assert kinds_a[:2] == [events.HandshakeInitiationSent, events.HandshakeCompleted]
    kinds_b = [type(e) for e in drain(p.b)]
    assert events.HandshakeResponseSent in kinds_b and events.HandshakeCompleted in kinds_b


def test_psk_mismatch_fails_handshake() -> None:
    p = make_pair(psk=bytes(32))
    p.b.apply(DeviceChange(peers=(PeerChange(public_key=p.a_pub, preshared_key=b"\x01" * 32),)), p.clock.now)
    p.a.send_packet(ipv4_packet(A_INNER, B_INNER), p.clock.now)
    p.flush()
    assert p.b.packets_to_tun() == []
    assert p.a.snapshot(p.clock.now).dropped == {DropReason.INVALID_HANDSHAKE: 1}
    assert p.a.snapshot(p.clock.now).peers[0].last_handshake is None


def test_inner_source_not_in_allowed_ips_is_dropped_but_endpoint_roams() -> None:
    p = make_pair()
    p.a.send_packet(ipv4_packet(A_INNER, B_INNER), p.clock.now)
    p.flush()
    p.b.packets_to_tun()
    spoofed = ipv4_packet("10.9.9.9", B_INNER, b"spoof")
    p.a.send_packet(spoofed, p.clock.now)
    (dgram,) = p.a.datagrams_to_send()
    roamed = ("198.51.100.7", 40000)
    p.b.receive_datagram(dgram[0], roamed, p.clock.now)
    assert p.b.packets_to_tun() == []
    snap = p.b.snapshot(p.clock.now)
    assert snap.dropped == {DropReason.SOURCE_NOT_ALLOWED: 1}
    assert snap.peers[0].endpoint == roamed


def test_roaming_follows_latest_authenticated_source() -> None:
    p = make_pair()
    p.a.send_packet(ipv4_packet(A_INNER, B_INNER), p.clock.now)
    p.flush()
    new_a = ("203.0.113.5", 1234)
    p.a.send_packet(ipv4_packet(A_INNER, B_INNER, b"moved"), p.clock.now)
    p.flush(a_from=new_a)
    assert p.b.snapshot(p.clock.now).peers[0].endpoint == new_a
    assert any(isinstance(e, events.EndpointChanged) and e.new == new_a for e in drain(p.b))
    p.b.send_packet(ipv4_packet(B_INNER, A_INNER), p.clock.now)
    (out,) = p.b.datagrams_to_send()
    assert out[1] == new_a
    # an unauthenticated datagram from elsewhere does not move the endpoint
    forged = bytearray(p.b.snapshot(p.clock.now).peers[0].public_key)
    p.b.receive_datagram(bytes(out[0][:16]) + bytes(forged), ("198.51.100.1", 9), p.clock.now)
    assert p.b.snapshot(p.clock.now).peers[0].endpoint == new_a


def test_no_route_and_no_endpoint_are_counted() -> None:
    p = make_pair(a_endpoint=False)
    p.a.send_packet(ipv4_packet(A_INNER, "10.77.0.1"), p.clock.now)
    p.a.send_packet(ipv4_packet(A_INNER, B_INNER), p.clock.now)
    assert p.a.datagrams_to_send() == []
    assert p.a.snapshot(p.clock.now).dropped == {DropReason.NO_ROUTE: 1, DropReason.NO_ENDPOINT: 1}


def test_padding_is_capped_at_mtu() -> None:
    p = make_pair()
    p.a.send_packet(ipv4_packet(A_INNER, B_INNER), p.clock.now)
    p.flush()
    p.b.packets_to_tun()
    for size, expected in [(1, 16), (16, 16), (17, 32), (1419, 1420), (1420, 1420)]:
        pkt = ipv4_packet(A_INNER, B_INNER, b"z" * (size - 20)) if size >= 20 else None
        if pkt is None:
            continue
        p.a.send_packet(pkt, p.clock.now)
        (out,) = p.a.datagrams_to_send()
        assert len(out[0]) == MESSAGE_TRANSPORT_SIZE + expected
        p.b.receive_datagram(out[0], A_ADDR, p.clock.now)
        assert p.b.packets_to_tun() == [pkt]  # padding removed by the IP length field


def test_peer_counters_count_handshakes_and_drops_by_reason() -> None:
    """The counters the doctor reasons over, kept as data per peer: a good handshake on both sides, then a
    preshared-key mismatch (the initiator's undecryptable response) and a spoofed inner source."""
    p = make_pair()
    p.a.send_packet(ipv4_packet(A_INNER, B_INNER), p.clock.now)
    p.flush()
    a, b = p.a.snapshot(p.clock.now).peers[0].counters, p.b.snapshot(p.clock.now).peers[0].counters
    assert (a.initiations_sent, a.responses_received, a.responses_sent, a.dropped) == (1, 1, 0, {})
    assert (b.initiations_sent, b.responses_received, b.responses_sent, b.dropped) == (0, 0, 1, {})

    p.a.send_packet(ipv4_packet("10.9.9.9", B_INNER, b"spoof"), p.clock.now)
    p.flush()
    assert p.b.snapshot(p.clock.now).peers[0].counters.dropped == {DropReason.SOURCE_NOT_ALLOWED: 1}

    p.b.apply(DeviceChange(peers=(PeerChange(public_key=p.a_pub, preshared_key=b"\x01" * 32),)), p.clock.now)
    p.advance(REKEY_TIMEOUT + 1)
    p.a.peers[p.b_pub].send_handshake_initiation(p.clock.now, retry=False)
    p.flush()
    a = p.a.snapshot(p.clock.now).peers[0].counters
    assert (a.initiations_sent, a.responses_received) == (2, 1)
    assert a.dropped == {DropReason.INVALID_HANDSHAKE: 1}


def test_handshakes_that_authenticate_as_no_one_count_for_the_peer_at_their_source() -> None:
    """A peer that has another public key for us (its mac1 is wrong for our key) is still counted for the
    peer configured at that endpoint, so the doctor can say who sends them; elsewhere: device-wide only."""
    p = make_pair()
    stranger = make_pair(seed=99)
    stranger.a.send_packet(ipv4_packet(A_INNER, B_INNER), stranger.clock.now)
    (init,) = stranger.a.datagrams_to_send()
    p.a.receive_datagram(init[0], B_ADDR, p.clock.now)
    p.a.receive_datagram(init[0], ("198.51.100.9", 7), p.clock.now)
    snap = p.a.snapshot(p.clock.now)
    assert snap.dropped == {DropReason.INVALID_MAC1: 2}
    assert snap.peers[0].counters.dropped == {DropReason.INVALID_MAC1: 1}


def test_drops_follow_the_peer_to_its_new_endpoint_and_forget_a_removed_one() -> None:
    """The endpoint index behind that attribution agrees with a scan of the peers after a roam, a `set`
    and a removal."""
    p = make_pair()
    stranger = make_pair(seed=99)
    stranger.a.send_packet(ipv4_packet(A_INNER, B_INNER), stranger.clock.now)
    (junk,) = stranger.a.datagrams_to_send()
    p.b.send_packet(ipv4_packet(B_INNER, A_INNER), p.clock.now)
    roamed = ("198.51.100.7", 4000)
    p.flush(b_from=roamed)  # a's peer b now sends from `roamed`
    assert p.a.snapshot(p.clock.now).peers[0].endpoint == roamed

    def counted() -> int:
        return p.a.snapshot(p.clock.now).peers[0].counters.dropped.get(DropReason.INVALID_MAC1, 0)

    p.a.receive_datagram(junk[0], B_ADDR, p.clock.now)  # the old address: no one's now
    assert counted() == 0
    p.a.receive_datagram(junk[0], roamed, p.clock.now)
    assert counted() == 1
    p.a.apply(DeviceChange(peers=(PeerChange(public_key=p.b_pub, endpoint=B_ADDR),)), p.clock.now)
    p.a.receive_datagram(junk[0], B_ADDR, p.clock.now)
    assert counted() == 2
    p.a.apply(DeviceChange(peers=(PeerChange(public_key=p.b_pub, remove=True),)), p.clock.now)
    p.a.receive_datagram(junk[0], B_ADDR, p.clock.now)
    assert p.a.snapshot(p.clock.now).dropped[DropReason.INVALID_MAC1] == 4
