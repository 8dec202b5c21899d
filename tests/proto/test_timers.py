"""Whitepaper §6 timer rules, driven by a fake clock that calls `handle_timer` exactly at each deadline."""

from __future__ import annotations

import itertools
from ipaddress import ip_network

from tests.proto.pair import A_ADDR, A_INNER, B_ADDR, B_INNER, Pair, SeededRandom, ipv4_packet, make_pair
from wgdesk.proto import events
from wgdesk.proto.changes import DeviceChange, PeerChange
from wgdesk.proto.constants import (
    KEEPALIVE_TIMEOUT,
    MESSAGE_INITIATION_SIZE,
    MESSAGE_RESPONSE_SIZE,
    MESSAGE_TRANSPORT_SIZE,
    REJECT_AFTER_MESSAGES,
    REJECT_AFTER_TIME,
    REKEY_AFTER_MESSAGES,
    REKEY_AFTER_TIME,
    REKEY_ATTEMPT_TIME,
    REKEY_TIMEOUT,
    REKEY_TIMEOUT_JITTER_MAX,
    ZERO_KEYS_AFTER,
)
from wgdesk.proto.device import Device
from wgdesk.proto.events import DropReason
from wgdesk.proto.keys import generate_private_key, public_key

Sent = list[tuple[float, bytes]]


def run_until(p: Pair, until: float, a_out: Sent | None = None, b_out: Sent | None = None) -> None:
    """Advance the clock to `until`, firing every timer at its deadline; collect (time, datagram)."""
    while True:
        deadlines = [t for t in (p.a.get_timer(), p.b.get_timer()) if t is not None]
        nxt = min(deadlines) if deadlines else None
        if nxt is None or nxt > until:
            break
        p.clock.now = max(p.clock.now, nxt)
        p.run_timers()
        for dev, out in ((p.a, a_out), (p.b, b_out)):
            sent = dev.datagrams_to_send()
            if out is not None:
                out.extend((p.clock.now, d) for d, _ in sent)
    p.clock.now = max(p.clock.now, until)


def established() -> Pair:
    p = make_pair()
    p.a.send_packet(ipv4_packet(A_INNER, B_INNER, b"hello"), p.clock.now)
    p.flush()
    assert p.b.packets_to_tun()
    return p


def drain(device: Device) -> list[events.Event]:
    return list(iter(device.next_event, None))


def test_rekey_after_time_with_ping_every_second_loses_nothing() -> None:
    p = established()
    start = p.clock.now
    first_handshake = p.a.snapshot(start).peers[0].last_handshake
    lost = 0
    for second in range(1, 131):
        run_until(p, start + second)
        p.flush()
        p.a.send_packet(ipv4_packet(A_INNER, B_INNER, second.to_bytes(4, "big")), p.clock.now)
        p.flush()
        got_b = p.b.packets_to_tun()
        p.b.send_packet(ipv4_packet(B_INNER, A_INNER, second.to_bytes(4, "big")), p.clock.now)
        p.flush()
        got_a = p.a.packets_to_tun()
        lost += (len(got_b) != 1) + (len(got_a) != 1)
    assert lost == 0
    snap = p.a.snapshot(p.clock.now).peers[0]
    assert first_handshake is not None and snap.last_handshake is not None
    advanced = snap.last_handshake - first_handshake
    assert REKEY_AFTER_TIME <= advanced <= REKEY_AFTER_TIME + 2
    assert p.a.snapshot(p.clock.now).dropped == {} and p.b.snapshot(p.clock.now).dropped == {}


def test_retransmit_then_give_up_after_rekey_attempt_time() -> None:
    p = make_pair()
    t0 = p.clock.now
    p.a.send_packet(ipv4_packet(A_INNER, B_INNER), t0)
    sent: Sent = [(t0, d) for d, _ in p.a.datagrams_to_send()]
    run_until(p, t0 + 300, a_out=sent)  # b never hears anything
    times = [t for t, d in sent if len(d) == MESSAGE_INITIATION_SIZE]
    assert len(times) == 20
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert all(REKEY_TIMEOUT <= g <= REKEY_TIMEOUT + REKEY_TIMEOUT_JITTER_MAX for g in gaps)
    # 20 initiations over Rekey-Attempt-Time (18 retry intervals fit in 90 s, as in wireguard-go)
    assert 19 * REKEY_TIMEOUT <= times[-1] - t0 <= 19 * (REKEY_TIMEOUT + REKEY_TIMEOUT_JITTER_MAX)
    assert times[-1] - t0 > REKEY_ATTEMPT_TIME
    evs = drain(p.a)
    assert sum(isinstance(e, events.HandshakeGaveUp) for e in evs) == 1
    assert p.a.snapshot(p.clock.now).dropped == {DropReason.HANDSHAKE_GAVE_UP: 1}
    # new traffic starts a fresh round
    p.a.send_packet(ipv4_packet(A_INNER, B_INNER), p.clock.now)
    assert [len(d) for d, _ in p.a.datagrams_to_send()] == [MESSAGE_INITIATION_SIZE]


def test_keepalive_after_keepalive_timeout_when_only_receiving() -> None:
    p = established()
    t = p.clock.now
    b_sent: Sent = []
    run_until(p, t + KEEPALIVE_TIMEOUT - 0.001, b_out=b_sent)
    assert b_sent == []
    run_until(p, t + KEEPALIVE_TIMEOUT, b_out=b_sent)
    assert [(round(tt - t, 6), len(d)) for tt, d in b_sent] == [(KEEPALIVE_TIMEOUT, MESSAGE_TRANSPORT_SIZE)]


def test_new_handshake_after_sending_without_hearing_back() -> None:
    p = established()
    p.b.send_packet(ipv4_packet(B_INNER, A_INNER), p.clock.now)  # a hears back: its timer is disarmed
    p.flush()
    run_until(p, p.clock.now + 1)
    t = p.clock.now
    p.a.send_packet(ipv4_packet(A_INNER, B_INNER), t)
    p.a.datagrams_to_send()  # lost
    a_sent: Sent = []
    run_until(p, t + 15.4, a_out=a_sent)
    inits = [tt - t for tt, d in a_sent if len(d) == MESSAGE_INITIATION_SIZE]
    assert len(inits) == 1 and 15.0 <= inits[0] <= 15.0 + REKEY_TIMEOUT_JITTER_MAX


def test_initiator_rekeys_on_receive_after_165_seconds_and_responder_does_not_rekey_on_time() -> None:
    p = established()
    t = p.clock.now
    run_until(p, t + 164)
    p.flush()
    p.b.send_packet(ipv4_packet(B_INNER, A_INNER), p.clock.now)
    assert [len(d) for d, _ in p.b.datagrams_to_send()] == [
        MESSAGE_TRANSPORT_SIZE + 32
    ]  # responder: no rekey
    run_until(p, t + 166)
    p.flush()
    p.b.send_packet(ipv4_packet(B_INNER, A_INNER), p.clock.now)
    (data,) = p.b.datagrams_to_send()
    p.a.receive_datagram(data[0], B_ADDR, p.clock.now)
    assert [len(d) for d, _ in p.a.datagrams_to_send()] == [MESSAGE_INITIATION_SIZE]


def test_reject_after_time_never_sends_or_accepts_on_old_keypair() -> None:
    p = established()
    t = p.clock.now
    p.a.send_packet(ipv4_packet(A_INNER, B_INNER), t)
    (late,) = p.a.datagrams_to_send()
    run_until(p, t + REJECT_AFTER_TIME)
    p.a.datagrams_to_send()
    p.b.datagrams_to_send()
    p.b.receive_datagram(late[0], A_ADDR, p.clock.now)
    assert p.b.snapshot(p.clock.now).dropped == {DropReason.KEYPAIR_EXPIRED: 1}
    p.b.send_packet(ipv4_packet(B_INNER, A_INNER), p.clock.now)
    assert [len(d) for d, _ in p.b.datagrams_to_send()] == [MESSAGE_INITIATION_SIZE]
    assert len(p.b.peers[p.a_pub].staged) == 1


def test_keys_are_zeroed_after_540_seconds() -> None:
    p = established()
    t = p.clock.now
    run_until(p, t + ZERO_KEYS_AFTER - 1)
    assert p.a.peers[p.b_pub].keypairs.all()
    run_until(p, t + ZERO_KEYS_AFTER)
    assert not p.a.peers[p.b_pub].keypairs.all() and not p.b.peers[p.a_pub].keypairs.all()
    assert any(isinstance(e, events.KeypairExpired) for e in drain(p.a))
    assert p.a.get_timer() is None and p.b.get_timer() is None


def test_rekey_after_messages_and_reject_after_messages() -> None:
    p = established()
    kp = p.a.peers[p.b_pub].keypairs.current
    assert kp is not None
    kp.send_counter = REKEY_AFTER_MESSAGES + 1
    p.clock.now += REKEY_TIMEOUT + 0.1  # initiations are at least Rekey-Timeout apart
    p.a.send_packet(ipv4_packet(A_INNER, B_INNER), p.clock.now)
    assert sorted(len(d) for d, _ in p.a.datagrams_to_send()) == [
        MESSAGE_TRANSPORT_SIZE + 32,
        MESSAGE_INITIATION_SIZE,
    ]
    kp.send_counter = REJECT_AFTER_MESSAGES
    p.clock.now += REKEY_TIMEOUT + 1
    p.a.send_packet(ipv4_packet(A_INNER, B_INNER), p.clock.now)
    out = p.a.datagrams_to_send()
    assert [len(d) for d, _ in out] == [MESSAGE_INITIATION_SIZE]  # staged, not sent on the spent keypair


def test_initiator_confirms_with_keepalive_when_nothing_is_staged() -> None:
    p = make_pair()
    p.a.peers[p.b_pub].send_handshake_initiation(p.clock.now, retry=False)
    (init,) = p.a.datagrams_to_send()
    p.b.receive_datagram(init[0], A_ADDR, p.clock.now)
    (resp,) = p.b.datagrams_to_send()
    assert len(resp[0]) == MESSAGE_RESPONSE_SIZE
    p.a.receive_datagram(resp[0], B_ADDR, p.clock.now)
    assert [len(d) for d, _ in p.a.datagrams_to_send()] == [MESSAGE_TRANSPORT_SIZE]


def test_persistent_keepalive() -> None:
    p = make_pair(keepalive=25)
    # turning persistent keepalive on sends at once (which needs a handshake first)
    assert [len(d) for d, _ in p.a.outgoing] == [MESSAGE_INITIATION_SIZE]
    p.flush()
    assert p.a.peers[p.b_pub].keypairs.current is not None
    t = p.clock.now
    a_sent: Sent = []
    run_until(p, t + 80, a_out=a_sent)
    keepalives = [round(tt - t, 3) for tt, d in a_sent if len(d) == MESSAGE_TRANSPORT_SIZE]
    assert keepalives[:3] == [25.0, 50.0, 75.0]


def test_private_key_change_forces_new_handshake_at_once() -> None:
    p = established()
    new_key = generate_private_key(SeededRandom(99))
    p.a.apply(DeviceChange(private_key=new_key), p.clock.now)
    p.b.apply(DeviceChange(peers=(PeerChange(public_key=p.a_pub, remove=True),)), p.clock.now)
    p.b.apply(
        DeviceChange(
            peers=(
                PeerChange(
                    public_key=public_key(new_key),
                    endpoint=A_ADDR,
                    allowed_ips=(ip_network(f"{A_INNER}/32"),),
                ),
            )
        ),
        p.clock.now,
    )
    p.a.send_packet(ipv4_packet(A_INNER, B_INNER, b"after"), p.clock.now)
    (init,) = p.a.datagrams_to_send()  # the old keypair may no longer send
    assert len(init[0]) == MESSAGE_INITIATION_SIZE
    p.b.receive_datagram(init[0], A_ADDR, p.clock.now)
    p.flush()
    assert p.b.packets_to_tun() == [ipv4_packet(A_INNER, B_INNER, b"after")]


def test_data_received_while_keepalive_pending_earns_another_keepalive() -> None:
    p = established()
    t = p.clock.now
    run_until(p, t + 5)
    p.a.send_packet(ipv4_packet(A_INNER, B_INNER), p.clock.now)
    p.flush()
    b_sent: Sent = []
    run_until(p, t + 21, b_out=b_sent)
    assert [(round(tt - t, 6), len(d)) for tt, d in b_sent] == [
        (KEEPALIVE_TIMEOUT, MESSAGE_TRANSPORT_SIZE),
        (2 * KEEPALIVE_TIMEOUT, MESSAGE_TRANSPORT_SIZE),
    ]


def test_responder_forgets_previous_keypair_when_a_new_session_arrives() -> None:
    """Keypair rotation as wireguard-go: a responder's new (unconfirmed) session drops `previous`."""
    p = established()  # session 1: a initiated

    def rekey(deliver: bool = True) -> None:
        p.clock.now += REKEY_TIMEOUT + 1
        p.a.peers[p.b_pub].send_handshake_initiation(p.clock.now, retry=False)
        if deliver:
            p.flush()

    rekey()  # session 2
    p.a.send_packet(ipv4_packet(A_INNER, B_INNER, b"held back"), p.clock.now)
    (held,) = p.a.datagrams_to_send()  # sealed on session 2, not delivered yet
    rekey()  # session 3: at b, previous = 2, current = 3
    kps = p.b.peers[p.a_pub].keypairs
    assert kps.previous is not None and kps.next is None
    rekey(deliver=False)  # session 4 reaches b: previous (2) is dropped, 4 waits in next
    (init,) = p.a.datagrams_to_send()
    p.b.receive_datagram(init[0], A_ADDR, p.clock.now)
    assert kps.previous is None and kps.current is not None and kps.next is not None
    p.b.receive_datagram(held[0], A_ADDR, p.clock.now)
    assert p.b.packets_to_tun() == []
    assert p.b.snapshot(p.clock.now).dropped == {DropReason.UNKNOWN_INDEX: 1}


def test_sending_data_cancels_the_pending_keepalive() -> None:
    p = established()
    t = p.clock.now
    run_until(p, t + 5)
    p.b.send_packet(ipv4_packet(B_INNER, A_INNER), p.clock.now)  # b answers: no keepalive needed
    b_data = p.b.datagrams_to_send()
    assert [len(d) for d, _ in b_data] == [MESSAGE_TRANSPORT_SIZE + 32]
    b_sent: Sent = []
    run_until(p, t + 12, b_out=b_sent)
    assert b_sent == []


def test_persistent_keepalive_is_pushed_back_by_outgoing_data() -> None:
    p = make_pair(keepalive=25)
    p.flush()
    timers = p.a.peers[p.b_pub].timers
    t = p.clock.now
    assert timers.persistent_keepalive == t + 25
    run_until(p, t + 20)
    p.a.send_packet(ipv4_packet(A_INNER, B_INNER), p.clock.now)  # any authenticated send re-arms it
    assert [len(d) for d, _ in p.a.datagrams_to_send()] == [MESSAGE_TRANSPORT_SIZE + 32]
    assert timers.persistent_keepalive == t + 45
    a_sent: Sent = []
    run_until(p, t + 30, a_out=a_sent)
    assert a_sent == []  # nothing at the old deadline t + 25
    p.b.send_packet(ipv4_packet(B_INNER, A_INNER), p.clock.now)  # and so does any authenticated receive
    p.flush()
    assert timers.persistent_keepalive == t + 55
