"""Cookies under load: the 7-message exchange, mac1/mac2 bit flips, source binding, rate limiting."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pytest

from tests.proto.pair import A_ADDR, A_INNER, B_ADDR, B_INNER, Pair, SeededRandom, ipv4_packet, make_pair
from wgdesk.proto import events, messages
from wgdesk.proto.changes import DeviceChange, PeerChange, PeerCounters
from wgdesk.proto.constants import (
    COOKIE_REFRESH_TIME,
    HANDSHAKE_INITIATION_RATE,
    MAX_TIMER_HANDSHAKES,
    MESSAGE_COOKIE_REPLY_SIZE,
    MESSAGE_INITIATION_SIZE,
    MESSAGE_RESPONSE_SIZE,
    REKEY_ATTEMPT_TIME,
    REKEY_TIMEOUT,
    REKEY_TIMEOUT_JITTER_MAX,
)
from wgdesk.proto.cookie import CookieChecker, CookieGenerator
from wgdesk.proto.events import DropReason
from wgdesk.proto.keys import generate_private_key, public_key


def state_of(pair: Pair) -> tuple[object, ...]:
    """What an ignored datagram must leave untouched on b (its diagnostic counters aside: counting a
    cookie reply sent is what the doctor needs, and no protocol state)."""
    peer = pair.b.peers[pair.a_pub]
    hs = peer.handshake
    return (
        tuple(replace(s, counters=PeerCounters()) for s in pair.b.snapshot(pair.clock.now).peers),
        hs.state,
        hs.latest_timestamp,
        hs.remote_index,
        tuple(k.local_index for k in peer.keypairs.all()),
        peer.timers.next_deadline(),
    )


def cookie_exchange(p: Pair) -> bytes:
    """Run messages 1–3 under load: returns the resent initiation carrying mac2."""
    p.b.pending_handshakes = p.b.under_load_threshold
    p.a.send_packet(ipv4_packet(A_INNER, B_INNER, b"under load"), p.clock.now)
    (init,) = p.a.datagrams_to_send()
    before = state_of(p)
    p.b.receive_datagram(init[0], A_ADDR, p.clock.now)  # 1: I→R initiation, mac2 zero
    (cookie,) = p.b.datagrams_to_send()  # 2: R→I cookie reply
    assert len(cookie[0]) == MESSAGE_COOKIE_REPLY_SIZE and cookie[1] == A_ADDR
    assert cookie[0][4:8] == init[0][4:8]  # addressed to the initiation's sender index
    assert state_of(p) == before  # the responder kept no state
    peer = p.a.peers[p.b_pub]
    retransmit_at = peer.timers.retransmit_handshake
    p.a.receive_datagram(cookie[0], B_ADDR, p.clock.now)
    assert any(isinstance(e, events.CookieReplyReceived) for e in iter(p.a.next_event, None))
    # the resend waits until Handshake-Initiation-Rate after the first initiation, not Rekey-Timeout
    assert p.a.datagrams_to_send() == []
    assert p.a.get_timer() == pytest.approx(p.clock.now + HANDSHAKE_INITIATION_RATE)
    p.advance(HANDSHAKE_INITIATION_RATE)
    p.run_timers()
    (again,) = p.a.datagrams_to_send()  # 3: I→R a fresh initiation with mac2
    assert len(again[0]) == MESSAGE_INITIATION_SIZE and again[0][-16:] != bytes(16)
    assert again[0][4:8] != init[0][4:8]  # new sender index (and ephemeral)
    assert again[0][8:40] != init[0][8:40]
    sent = [e for e in iter(p.a.next_event, None) if isinstance(e, events.HandshakeInitiationSent)]
    assert [e.retry for e in sent] == [True]
    # the attempt's bookkeeping is untouched: same retransmit deadline, same attempt count
    assert peer.timers.retransmit_handshake == retransmit_at
    assert peer.timers.handshake_attempts == 0
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
    assert p.b.snapshot(p.clock.now).peers[0].counters.cookie_replies_sent == 1
    a = p.a.snapshot(p.clock.now).peers[0].counters
    assert (a.initiations_sent, a.cookie_replies_received, a.responses_received) == (2, 1, 1)


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
    p.advance(HANDSHAKE_INITIATION_RATE)
    p.run_timers()
    p.flush(a_from=a6, b_from=b6)
    assert p.b.packets_to_tun() == [ipv4_packet(A_INNER, B_INNER, b"v6")]
    assert p.b.snapshot(p.clock.now).peers[0].endpoint == a6


# --- the initiator's resend on a cookie reply (a deliberate deviation, docs/architecture.md) ------------


def first_initiation_under_load(p: Pair) -> tuple[bytes, bytes]:
    """a starts a handshake to an under-load b; returns (a's initiation, b's cookie reply), undelivered."""
    p.b.pending_handshakes = p.b.under_load_threshold
    p.a.send_packet(ipv4_packet(A_INNER, B_INNER, b"under load"), p.clock.now)
    (init,) = p.a.datagrams_to_send()
    p.b.receive_datagram(init[0], A_ADDR, p.clock.now)
    (cookie,) = p.b.datagrams_to_send()
    return init[0], cookie[0]


def initiations_sent(p: Pair) -> list[bool]:
    """The `retry` flags of a's HandshakeInitiationSent events since the last call."""
    return [e.retry for e in iter(p.a.next_event, None) if isinstance(e, events.HandshakeInitiationSent)]


def test_resend_is_immediate_when_the_cookie_comes_after_the_initiation_rate() -> None:
    p = make_pair()
    init, cookie = first_initiation_under_load(p)
    initiations_sent(p)
    p.advance(0.05)  # a 50 ms round trip
    p.a.receive_datagram(cookie, B_ADDR, p.clock.now)
    (again,) = p.a.datagrams_to_send()  # sent from the receive path, no timer needed
    assert again[0][-16:] != bytes(16) and again[0][4:8] != init[4:8]
    assert initiations_sent(p) == [True]
    p.b.receive_datagram(again[0], A_ADDR, p.clock.now)  # b is still under load and accepts the mac2
    (resp,) = p.b.datagrams_to_send()
    assert len(resp[0]) == MESSAGE_RESPONSE_SIZE
    p.a.receive_datagram(resp[0], B_ADDR, p.clock.now)
    p.flush()
    assert p.b.packets_to_tun() == [ipv4_packet(A_INNER, B_INNER, b"under load")]
    assert p.b.snapshot(p.clock.now).dropped == {DropReason.INVALID_MAC2: 1}


@pytest.mark.parametrize("when", ["before the resend", "after the resend"])
def test_duplicate_cookie_reply_does_not_resend_again(when: str) -> None:
    p = make_pair()
    _, cookie = first_initiation_under_load(p)
    p.a.receive_datagram(cookie, B_ADDR, p.clock.now)
    if when == "after the resend":
        p.advance(HANDSHAKE_INITIATION_RATE)
        p.run_timers()
        assert len(p.a.datagrams_to_send()) == 1
    initiations_sent(p)
    peer = p.a.peers[p.b_pub]
    deadlines = (peer.timers.retransmit_handshake, peer.timers.cookie_resend)
    p.a.receive_datagram(cookie, B_ADDR, p.clock.now)
    # before the resend the index is still live but no mac1 is outstanding; after it the index is gone
    reason = DropReason.INVALID_COOKIE_REPLY if when == "before the resend" else DropReason.UNKNOWN_INDEX
    assert p.a.snapshot(p.clock.now).dropped == {reason: 1}
    assert (peer.timers.retransmit_handshake, peer.timers.cookie_resend) == deadlines
    p.advance(HANDSHAKE_INITIATION_RATE)
    p.run_timers()
    out = p.a.datagrams_to_send()
    assert len(out) == (1 if when == "before the resend" else 0)  # the one resend, never a second
    assert initiations_sent(p) == [True] * len(out)


def test_a_cookie_reply_to_the_resend_does_not_resend_again_until_the_next_attempt() -> None:
    """At most one resend per attempt: even a valid cookie reply to the resend only stores the cookie.
    The next attempt (Rekey-Timeout later) may be resent once again."""
    p = make_pair()
    _, cookie = first_initiation_under_load(p)
    p.advance(0.05)
    p.a.receive_datagram(cookie, B_ADDR, p.clock.now)
    (again,) = p.a.datagrams_to_send()
    rebound = (A_ADDR[0], A_ADDR[1] + 1)  # a NAT rebinding: the cookie no longer matches the source
    p.b.receive_datagram(again[0], rebound, p.clock.now)
    (cookie2,) = p.b.datagrams_to_send()
    assert len(cookie2[0]) == MESSAGE_COOKIE_REPLY_SIZE
    initiations_sent(p)
    p.advance(0.05)
    p.a.receive_datagram(cookie2[0], B_ADDR, p.clock.now)
    assert any(isinstance(e, events.CookieReplyReceived) for e in iter(p.a.next_event, None))
    assert p.a.datagrams_to_send() == []
    assert p.a.get_timer() == p.a.peers[p.b_pub].timers.retransmit_handshake  # nothing else armed
    p.advance(REKEY_TIMEOUT + REKEY_TIMEOUT_JITTER_MAX)
    p.run_timers()
    (attempt2,) = p.a.datagrams_to_send()
    assert initiations_sent(p) == [True]
    p.b.receive_datagram(attempt2[0], A_ADDR, p.clock.now)  # the cookie is for `rebound`: mac2 invalid
    (cookie3,) = p.b.datagrams_to_send()
    p.advance(0.05)
    p.a.receive_datagram(cookie3[0], B_ADDR, p.clock.now)
    assert len(p.a.datagrams_to_send()) == 1  # the new attempt's one resend
    assert initiations_sent(p) == [True]


def test_stale_cookie_reply_for_an_earlier_attempt_is_dropped() -> None:
    p = make_pair()
    _, cookie = first_initiation_under_load(p)
    p.advance(REKEY_TIMEOUT + REKEY_TIMEOUT_JITTER_MAX)
    p.run_timers()
    assert len(p.a.datagrams_to_send()) == 1  # attempt 2 replaces attempt 1's index
    initiations_sent(p)
    p.a.receive_datagram(cookie, B_ADDR, p.clock.now)
    assert p.a.snapshot(p.clock.now).dropped == {DropReason.UNKNOWN_INDEX: 1}
    p.advance(1.0)
    p.run_timers()
    assert p.a.datagrams_to_send() == [] and initiations_sent(p) == []


def test_no_resend_once_the_session_is_established() -> None:
    """b consumed a copy of the initiation (not yet under load) and answered a duplicate of it with a
    cookie (under load): the cookie reply arrives first, the response before the resend is due."""
    p = make_pair()
    p.a.send_packet(ipv4_packet(A_INNER, B_INNER, b"hello"), p.clock.now)
    (init,) = p.a.datagrams_to_send()
    p.b.receive_datagram(init[0], A_ADDR, p.clock.now)
    (resp,) = p.b.datagrams_to_send()
    p.b.pending_handshakes = p.b.under_load_threshold
    p.b.receive_datagram(init[0], A_ADDR, p.clock.now)
    (cookie,) = p.b.datagrams_to_send()
    assert len(cookie[0]) == MESSAGE_COOKIE_REPLY_SIZE
    p.a.receive_datagram(cookie[0], B_ADDR, p.clock.now)
    assert p.a.peers[p.b_pub].timers.cookie_resend is not None  # scheduled...
    p.a.receive_datagram(resp[0], B_ADDR, p.clock.now)
    assert p.a.peers[p.b_pub].keypairs.current is not None
    assert p.a.peers[p.b_pub].timers.cookie_resend is None  # ...and cancelled by the session
    p.a.datagrams_to_send()  # the staged packet
    initiations_sent(p)
    p.advance(HANDSHAKE_INITIATION_RATE)
    p.run_timers()
    assert all(d[0] != 1 for d, _ in p.a.datagrams_to_send()) and initiations_sent(p) == []


def test_no_resend_when_the_peer_initiated_meanwhile() -> None:
    """Crossing handshakes: the resend is pending when b's own initiation arrives and a answers it; the
    handshake a started is no longer the one in flight, so nothing is resent."""
    p = make_pair()
    _, cookie = first_initiation_under_load(p)
    p.a.receive_datagram(cookie, B_ADDR, p.clock.now)
    p.advance(0.005)
    p.b.peers[p.a_pub].send_handshake_initiation(p.clock.now, retry=False)
    (b_init,) = p.b.datagrams_to_send()
    p.a.receive_datagram(b_init[0], B_ADDR, p.clock.now)
    (resp,) = p.a.datagrams_to_send()
    assert len(resp[0]) == MESSAGE_RESPONSE_SIZE
    initiations_sent(p)
    p.advance(HANDSHAKE_INITIATION_RATE)
    p.run_timers()
    assert p.a.datagrams_to_send() == [] and initiations_sent(p) == []


def test_cookie_reply_addressed_to_a_session_index_stores_the_cookie_but_does_not_resend() -> None:
    """A cookie reply is looked up by handshake or session index (standard); only one addressed to the
    initiation in flight triggers the resend, even if it decrypts against that initiation's mac1."""
    p = make_pair()
    p.a.send_packet(ipv4_packet(A_INNER, B_INNER), p.clock.now)
    p.flush()
    session = p.a.peers[p.b_pub].keypairs.current
    assert session is not None
    p.advance(REKEY_TIMEOUT + 1)
    p.a.peers[p.b_pub].send_handshake_initiation(p.clock.now, retry=False)  # a rekey is in flight
    (init,) = p.a.datagrams_to_send()
    reply = p.b.cookie_checker.create_reply(init[0], session.local_index, A_ADDR, p.clock.now)
    initiations_sent(p)
    p.advance(0.05)
    p.a.receive_datagram(reply, B_ADDR, p.clock.now)
    assert any(isinstance(e, events.CookieReplyReceived) for e in iter(p.a.next_event, None))
    p.advance(HANDSHAKE_INITIATION_RATE)
    p.run_timers()
    assert p.a.datagrams_to_send() == [] and initiations_sent(p) == []


def test_a_new_attempt_cancels_a_pending_resend() -> None:
    """A private-key change allows a new initiation at once; the resend pending for the old one must not
    follow it 20 ms later (the new attempt got no cookie reply)."""
    p = make_pair()
    _, cookie = first_initiation_under_load(p)
    p.a.receive_datagram(cookie, B_ADDR, p.clock.now)
    p.advance(0.005)
    p.a.apply(DeviceChange(private_key=generate_private_key(SeededRandom(99))), p.clock.now)
    p.a.send_packet(ipv4_packet(A_INNER, B_INNER), p.clock.now)
    assert [d[0] for d, _ in p.a.datagrams_to_send()] == [1]  # the new attempt
    initiations_sent(p)
    p.advance(HANDSHAKE_INITIATION_RATE)
    p.run_timers()
    assert p.a.datagrams_to_send() == [] and initiations_sent(p) == []


def test_no_resend_for_a_removed_peer_or_after_giving_up() -> None:
    p = make_pair()
    _, cookie = first_initiation_under_load(p)
    p.a.receive_datagram(cookie, B_ADDR, p.clock.now)
    p.a.apply(DeviceChange(peers=(PeerChange(p.b_pub, remove=True),)), p.clock.now)
    p.advance(HANDSHAKE_INITIATION_RATE)
    p.run_timers()
    assert p.a.datagrams_to_send() == [] and p.a.get_timer() is None

    p = make_pair()
    peer = p.a.peers[p.b_pub]
    p.b.pending_handshakes = p.b.under_load_threshold
    p.a.send_packet(ipv4_packet(A_INNER, B_INNER), p.clock.now)
    last: bytes = b""
    while not any(isinstance(e, events.HandshakeGaveUp) for e in iter(p.a.next_event, None)):
        assert p.clock.now < 1000 + 2 * REKEY_ATTEMPT_TIME, "never gave up"
        out = p.a.datagrams_to_send()
        if out:
            (last,) = (d for d, _ in out)
        deadline = p.a.get_timer()
        assert deadline is not None
        p.clock.now = deadline
        p.run_timers()
    assert peer.timers.handshake_attempts == MAX_TIMER_HANDSHAKES + 1
    p.b.receive_datagram(last, A_ADDR, p.clock.now)  # the last attempt's cookie reply arrives late
    (cookie,) = p.b.datagrams_to_send()
    p.a.receive_datagram(cookie[0], B_ADDR, p.clock.now)
    assert any(isinstance(e, events.CookieReplyReceived) for e in iter(p.a.next_event, None))
    p.advance(1.0)
    p.run_timers()
    assert p.a.datagrams_to_send() == []


def test_cookie_replies_do_not_change_the_retransmit_budget() -> None:
    """Every initiation is answered with a cookie reply and never a response (the source port changes
    each time, so mac2 never matches): one resend per attempt, the same 20 attempts, and the give-up
    comes when Rekey-Timeout + jitter after the 20th attempt, as without cookies."""
    p = make_pair()
    p.b.pending_handshakes = p.b.under_load_threshold
    peer = p.a.peers[p.b_pub]
    p.a.send_packet(ipv4_packet(A_INNER, B_INNER), p.clock.now)
    start = p.clock.now
    flags: list[bool] = []
    attempt_times: list[float] = []
    port = 40000
    gave_up_at: float | None = None

    def step(action: Callable[[], None]) -> None:
        nonlocal gave_up_at
        deadline = peer.timers.retransmit_handshake
        action()
        for e in iter(p.a.next_event, None):
            if isinstance(e, events.HandshakeInitiationSent):
                flags.append(e.retry)
                if len(flags) % 2 == 0:  # the attempt's resend: its deadline stays
                    assert peer.timers.retransmit_handshake == deadline
                else:
                    attempt_times.append(p.clock.now)
            elif isinstance(e, events.HandshakeGaveUp):
                gave_up_at = p.clock.now

    step(lambda: None)
    while gave_up_at is None and p.clock.now - start < 2 * REKEY_ATTEMPT_TIME:
        for data, _ in p.a.datagrams_to_send():
            port += 1
            p.b.receive_datagram(data, (A_ADDR[0], port), p.clock.now)
        p.advance(0.001)  # 1 ms round trip
        for data, _ in p.b.datagrams_to_send():
            assert len(data) == MESSAGE_COOKIE_REPLY_SIZE
            step(lambda data=data: p.a.receive_datagram(data, B_ADDR, p.clock.now))
        deadline = p.a.get_timer()
        assert deadline is not None
        p.clock.now = max(p.clock.now, deadline)
        step(p.run_timers)
    assert gave_up_at is not None, "never gave up"
    attempts = MAX_TIMER_HANDSHAKES + 2
    assert flags == [False, True] + [True, True] * (attempts - 1)  # each attempt plus its one resend
    assert len(attempt_times) == attempts and attempt_times[0] == start
    assert peer.timers.handshake_attempts == MAX_TIMER_HANDSHAKES + 1
    gaps = [b - a for a, b in zip(attempt_times, [*attempt_times[1:], gave_up_at], strict=True)]
    assert all(REKEY_TIMEOUT <= g <= REKEY_TIMEOUT + REKEY_TIMEOUT_JITTER_MAX for g in gaps), gaps
    assert p.a.snapshot(p.clock.now).dropped == {DropReason.HANDSHAKE_GAVE_UP: 1}
