"""The receive path never raises and ignores garbage completely: no output, no state change."""

from __future__ import annotations

import hypothesis.strategies as st
from hypothesis import HealthCheck, given, settings

from tests.proto.pair import A_ADDR, SeededRandom, established
from wgdesk.proto.constants import MESSAGE_COOKIE_REPLY_SIZE, MESSAGE_INITIATION_SIZE
from wgdesk.proto.device import Device

PAIR, SAMPLES = established()


def state_of(dev: Device) -> tuple[object, ...]:
    (peer,) = dev.peers.values()
    hs = peer.handshake
    return (
        peer.endpoint,
        peer.rx_bytes,
        peer.tx_bytes,
        hs.state,
        hs.latest_timestamp,
        hs.remote_index,
        tuple((k.local_index, k.send_counter) for k in peer.keypairs.all()),
        tuple(k.replay._last for k in peer.keypairs.all()),
        peer.timers.next_deadline(),
        peer.last_handshake,
        len(peer.staged),
    )


def assert_ignored(
    data: bytes, addr: tuple[str, int] = ("198.51.100.9", 4444), allow_cookie: bool = False
) -> None:
    """No state change and no output. With `allow_cookie` (a handshake message whose mac1 is valid),
    the only permitted output is a 64-byte cookie reply: the rate limiter may have put b under load."""
    b = PAIR.b
    before = state_of(b)
    b.receive_datagram(data, addr, PAIR.clock.now)
    out = b.datagrams_to_send()
    if allow_cookie:
        assert all(len(d) == MESSAGE_COOKIE_REPLY_SIZE and d[0] == 3 for d, _ in out)
    else:
        assert out == []
    assert b.packets_to_tun() == []
    assert state_of(b) == before


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300))
def test_random_bytes(data: bytes) -> None:
    assert_ignored(data)


@settings(max_examples=400)
@given(st.sampled_from(SAMPLES), st.data())
def test_truncated_or_mutated_real_messages(sample: bytes, data: st.DataObject) -> None:
    kind = data.draw(st.sampled_from(["truncate", "flip", "splice"]))
    if kind == "truncate":
        cut = data.draw(st.integers(0, len(sample) - 1))
        msg = sample[:cut]
    elif kind == "flip":
        pos = data.draw(st.integers(0, len(sample) - 1))
        bit = data.draw(st.integers(0, 7))
        buf = bytearray(sample)
        buf[pos] ^= 1 << bit
        msg = bytes(buf)
    else:
        extra = data.draw(st.binary(min_size=1, max_size=64))
        msg = sample + extra
    # a flip inside mac2 leaves mac1 valid: then it is a replayed initiation, which changes nothing
    assert_ignored(
        msg, allow_cookie=sample[0] == 1 and kind == "flip" and pos >= MESSAGE_INITIATION_SIZE - 16
    )


def test_replayed_real_messages_change_nothing() -> None:
    for sample in SAMPLES:
        assert_ignored(sample, A_ADDR, allow_cookie=sample[0] == 1)


@settings(max_examples=200)
@given(st.lists(st.binary(max_size=80), max_size=20))
def test_send_path_never_raises_on_garbage(packets: list[bytes]) -> None:
    PAIR.a.send_packets(packets, PAIR.clock.now)
    PAIR.a.datagrams_to_send()


@settings(max_examples=200)
@given(st.binary(max_size=200))
def test_unconfigured_device_ignores_everything(data: bytes) -> None:
    dev = Device(SeededRandom(1), lambda: 0.0)
    dev.receive_datagram(data, ("192.0.2.1", 1), 0.0)
    dev.send_packet(data, 0.0)
    dev.handle_timer(0.0)
    assert dev.datagrams_to_send() == [] and dev.packets_to_tun() == []
