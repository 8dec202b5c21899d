"""Cookies under load: the 7-message exchange, mac1/mac2 bit flips, source binding, rate limiting."""

from __future__ import annotations

import pytest

from tests.proto.pair import A_ADDR, A_INNER, B_ADDR, B_INNER, Pair, SeededRandom, ipv4_packet, make_pair
from wgdesk.proto import events, messages
from wgdesk.proto.changes import DeviceChange, PeerChange
from wgdesk.proto.constants import (
    COOKIE_REFRESH_TIME,
    MESSAGE_COOKIE_REPLY_SIZE,
    MESSAGE_INITIATION_SIZE,
    MESSAGE_RESPONSE_SIZE,
    REKEY_TIMEOUT,
    REKEY_TIMEOUT_JITTER_MAX,
)
from wgdesk.proto.cookie import CookieChecker, CookieGenerator
from wgdesk.proto.events import DropReason
from wgdesk.proto.keys import generate_private_key, public_key


def state_of(pair: Pair) -> tuple[object, ...]:
    """What an ignored datagram must leave untouched on b."""
    peer = pair.b.peers[pair.a_pub]
    hs = peer.handshake
    return (
        pair.b.snapshot(pair.clock.now).peers,
        hs.state,
        hs.latest_timestamp,
        hs.remote_index,
        tuple(k.local_index for k in peer.keypairs.all()),
        peer.timers.next_deadline(),
    )


def cookie_exchange(p: Pair) -> bytes:
    """Run messages 1–3 under load: returns the retransmitted initiation carrying mac2."""
    p.b.pending_handshakes = p.b.under_load_threshold
    p.a.send_packet(ipv4_packet(A_INNER, B_INNER, b"under load"), p.clock.now)
    (init,) = p.a.datagrams_to_send()
    before = state_of(p)
    p.b.receive_datagram(init[0], A_ADDR, p.clock.now)  # 1: I→R initiation, mac2 zero
    (cookie,) = p.b.datagrams_to_send()  # 2: R→I cookie reply
    assert len(cookie[0]) == MESSAGE_COOKIE_REPLY_SIZE and cookie[1] == A_ADDR
    assert cookie[0][4:8] == init[0][4:8]  # addressed to the initiation's sender index
    assert state_of(p) == before  # the responder kept no state
    p.a.receive_datagram(cookie[0], B_ADDR, p.clock.now)
    assert p.a.datagrams_to_send() == []  # the cookie does not trigger an immediate resend
    assert any(isinstance(e, events.CookieReplyReceived) for e in iter(p.a.next_event, None))
    p.advance(REKEY_TIMEOUT + REKEY_TIMEOUT_JITTER_MAX)
    p.run_timers()
    (again,) = p.a.datagrams_to_send()  # 3: I→R initiation with mac2
    assert len(again[0]) == MESSAGE_INITIATION_SIZE and again[0][-16:] != bytes(16)
    return again[0]


def test_seven_message_cookie_exchange_under_load() -> None:
    p = make_pair()
    init2 = cookie_exchange(p)
    p.b.receive_datagram(init2, A_ADDR, p.clock.now)
    (resp,) = p.b.datagrams_to_send()  # 4: R→I response
    assert len(resp[0]) == MESSAGE_RESPONSE_SIZE
    p.a.receive_datagram(resp[0], B_ADDR, p.clock.now)
    (data,) = p.a.datagrams_to_send()  # 5: I→R the staged packet (key confirmation)
    p.b.receive_datagram(data[0], A_ADDR, p.clock.now)
    assert p.b.packets_to_tun() == [ipv4_packet(A_INNER, B_INNER, b"under load")]
    p.b.send_packet(ipv4_packet(B_INNER, A_INNER, b"reply"), p.clock.now)  # 6: R→I data
    (back,) = p.b.datagrams_to_send()
    p.a.receive_datagram(back[0], B_ADDR, p.clock.now)
    assert p.a.packets_to_tun() == [ipv4_packet(B_INNER, A_INNER, b"reply")]
    dropped = p.b.snapshot(p.clock.now).dropped
    assert dropped == {DropReason.INVALID_MAC2: 1}


def test_without_load_no_cookie_is_needed() -> None:
    p = make_pair()
    p.a.send_packet(ipv4_packet(A_INNER, B_INNER), p.clock.now)
    (init,) = p.a.datagrams_to_send()
    assert init[0][-16:] == bytes(16)
    p.b.receive_datagram(init[0], A_ADDR, p.clock.now)
    (resp,) = p.b.datagrams_to_send()
    assert len(resp[0]) == MESSAGE_RESPONSE_SIZE


@pytest.mark.parametrize("field", ["mac1", "mac2", "body"])
def test_any_bit_flip_breaks_mac1_or_mac2_without_state_change(field: str) -> None:
    p = make_pair()
    good = cookie_exchange(p)
    ranges = {"mac1": range(116 * 8, 132 * 8), "mac2": range(132 * 8, 148 * 8), "body": range(0, 116 * 8, 7)}
    before = state_of(p)
    for bit in ranges[field]:
        bad = bytearray(good)
        bad[bit // 8] ^= 1 << (bit % 8)
        p.b.receive_datagram(bytes(bad), A_ADDR, p.clock.now)
        out = p.b.datagrams_to_send()
        if field == "mac2":
            # mac1 is fine, so the sender gets a (new) cookie and nothing else
            assert [len(d) for d, _ in out] == [MESSAGE_COOKIE_REPLY_SIZE]
        else:
            assert out == []
        assert state_of(p) == before
    dropped = p.b.snapshot(p.clock.now).dropped
    expected = DropReason.INVALID_MAC2 if field == "mac2" else DropReason.INVALID_MAC1
    # flips in the type/reserved bytes make it no initiation at all
    assert dropped.get(expected, 0) + dropped.get(DropReason.INVALID_MESSAGE, 0) >= len(ranges[field])
    # the unmodified message still works
    p.b.receive_datagram(good, A_ADDR, p.clock.now)
    assert [len(d) for d, _ in p.b.datagrams_to_send()] == [MESSAGE_RESPONSE_SIZE]


@pytest.mark.parametrize("other", [("192.0.2.99", A_ADDR[1]), (A_ADDR[0], A_ADDR[1] + 1)])
def test_mac2_is_bound_to_the_source_address(other: tuple[str, int]) -> None:
    p = make_pair()
    good = cookie_exchange(p)
    before = state_of(p)
    p.b.receive_datagram(good, other, p.clock.now)
    out = p.b.datagrams_to_send()
    assert [(len(d), dst) for d, dst in out] == [(MESSAGE_COOKIE_REPLY_SIZE, other)]
    assert state_of(p) == before


def test_cookie_expires_after_refresh_time() -> None:
    p = make_pair()
    cookie_exchange(p)
    p.b.datagrams_to_send()
    p.advance(COOKIE_REFRESH_TIME + 1)
    p.a.peers[p.b_pub].last_sent_handshake = float("-inf")
    p.a.peers[p.b_pub].send_handshake_initiation(p.clock.now, retry=False)
    (init,) = p.a.datagrams_to_send()
    assert init[0][-16:] == bytes(16)  # stale cookie: mac2 left zero


def test_forged_or_unsolicited_cookie_reply_is_dropped() -> None:
    p = make_pair()
    p.b.pending_handshakes = p.b.under_load_threshold
    p.a.send_packet(ipv4_packet(A_INNER, B_INNER), p.clock.now)
    (init,) = p.a.datagrams_to_send()
    p.b.receive_datagram(init[0], A_ADDR, p.clock.now)
    (cookie,) = p.b.datagrams_to_send()
    bad = bytearray(cookie[0])
    bad[40] ^= 1
    p.a.receive_datagram(bytes(bad), B_ADDR, p.clock.now)
    assert p.a.snapshot(p.clock.now).dropped == {DropReason.INVALID_COOKIE_REPLY: 1}
    p.a.receive_datagram(cookie[0], B_ADDR, p.clock.now)  # genuine: accepted once
    p.a.receive_datagram(cookie[0], B_ADDR, p.clock.now)  # replay: no outstanding mac1 any more
    assert p.a.snapshot(p.clock.now).dropped == {DropReason.INVALID_COOKIE_REPLY: 2}
    unknown = bytearray(cookie[0])
    unknown[4:8] = b"\xff\xff\xff\xff"
    p.a.receive_datagram(bytes(unknown), B_ADDR, p.clock.now)
    assert p.a.snapshot(p.clock.now).dropped[DropReason.UNKNOWN_INDEX] == 1


def test_rate_limiter_puts_the_device_under_load() -> None:
    """Without engine pressure, a burst of handshakes from one address beyond the limiter's burst makes
    the responder demand cookies."""
    p = make_pair()
    peer = p.a.peers[p.b_pub]
    kinds: list[int] = []
    for _ in range(8):
        peer.last_sent_handshake = float("-inf")
        peer.send_handshake_initiation(p.clock.now, retry=False)
        (init,) = p.a.datagrams_to_send()
        p.b.receive_datagram(init[0], A_ADDR, p.clock.now)
        kinds.extend(len(d) for d, _ in p.b.datagrams_to_send())
        p.advance(0.021)  # past the per-peer 20 ms initiation flood limit
    assert kinds[:5] == [MESSAGE_RESPONSE_SIZE] * 5
    assert MESSAGE_COOKIE_REPLY_SIZE in kinds[5:]
    assert any(isinstance(e, events.UnderLoad) for e in iter(p.b.next_event, None))
    assert not p.b.under_load(p.clock.now + 1.5)  # the state lapses after a second


def test_cookie_secret_older_than_refresh_time_is_not_accepted() -> None:
    """CookieChecker alone: a mac2 made with a cookie from a secret older than 120 s fails."""

    rng = SeededRandom(31)
    responder_pub = public_key(generate_private_key(rng))
    checker = CookieChecker(rng)
    checker.init(responder_pub)
    generator = CookieGenerator(responder_pub)
    msg = generator.add_macs(bytearray(rng(116) + bytes(32)), 0.0)
    reply = messages.parse_cookie_reply(checker.create_reply(msg, 1, A_ADDR, 0.0))
    assert reply is not None and generator.consume_reply(reply, 10.0)
    fresh = generator.add_macs(bytearray(rng(116) + bytes(32)), 100.0)
    assert checker.check_mac1(fresh)
    assert checker.check_mac2(fresh, A_ADDR, COOKIE_REFRESH_TIME)
    assert not checker.check_mac2(fresh, A_ADDR, COOKIE_REFRESH_TIME + 0.5)


def test_staged_queue_is_bounded_and_keeps_the_newest() -> None:
    p = make_pair()
    sent = [ipv4_packet(A_INNER, B_INNER, i.to_bytes(2, "big")) for i in range(200)]
    p.a.send_packet(sent[0], p.clock.now)
    ((first, _),) = p.a.datagrams_to_send()
    for pkt in sent[1:]:
        p.a.send_packet(pkt, p.clock.now)
    assert p.a.datagrams_to_send() == []  # one initiation per Rekey-Timeout
    assert p.a.snapshot(p.clock.now).dropped == {DropReason.STAGED_OVERFLOW: 200 - 128}
    p.b.receive_datagram(first, A_ADDR, p.clock.now)
    p.flush()
    assert p.b.packets_to_tun() == sent[-128:]


def test_ipv6_outer_endpoints_handshake_roam_and_get_cookies() -> None:
    p = make_pair()
    a6, b6 = ("2001:db8::1", 51820), ("2001:db8::2", 51821)
    p.a.apply(DeviceChange(peers=(PeerChange(p.b_pub, endpoint=b6),)), p.clock.now)
    p.b.pending_handshakes = p.b.under_load_threshold
    p.a.send_packet(ipv4_packet(A_INNER, B_INNER, b"v6"), p.clock.now)
    (init,) = p.a.datagrams_to_send()
    assert init[1] == b6
    p.b.receive_datagram(init[0], a6, p.clock.now)
    (cookie,) = p.b.datagrams_to_send()
    assert cookie[1] == a6 and len(cookie[0]) == MESSAGE_COOKIE_REPLY_SIZE
    p.a.receive_datagram(cookie[0], b6, p.clock.now)
    p.advance(REKEY_TIMEOUT + REKEY_TIMEOUT_JITTER_MAX)
    p.run_timers()
    p.flush(a_from=a6, b_from=b6)
    assert p.b.packets_to_tun() == [ipv4_packet(A_INNER, B_INNER, b"v6")]
    assert p.b.snapshot(p.clock.now).peers[0].endpoint == a6
