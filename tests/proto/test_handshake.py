"""The Noise_IKpsk2 core against the published cacophony vector, and WireGuard message rules."""

from __future__ import annotations

import pytest

from tests.proto.pair import SeededRandom
from wgdesk.proto import crypto, handshake, messages
from wgdesk.proto.constants import MESSAGE_INITIATION_SIZE, MESSAGE_RESPONSE_SIZE
from wgdesk.proto.handshake import Handshake, HandshakeState, StaticIdentity
from wgdesk.proto.keys import generate_private_key

h = bytes.fromhex

# cacophony.txt (mcginty/snow tests/vectors), "Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s"
VECTOR = {
    "prologue": "4a6f686e2047616c74",
    "psk": "54686973206973206d7920417573747269616e20706572737065637469766521",
    "init_static": "e61ef9919cde45dd5f82166404bd08e38bceb5dfdfded0a34c8df7ed542214d1",
    "init_ephemeral": "893e28b9dc6ca8d611ab664754b8ceb7bac5117349a4439a6b0569da977c464a",
    "init_remote_static": "31e0303fd6418d2f8c0e78b91f22e8caed0fbe48656dcf4767e4834f701b8f62",
    "resp_static": "4a3acbfdb163dec651dfa3194dece676d437029c62a408b4c5ea9114246e4893",
    "resp_ephemeral": "bbdb4cdbd309f1a1f2e1456967fe288cadd6f712d65dc7b7793d5e63da6b375b",
    "messages": [
        (
            "4c756477696720766f6e204d69736573",
            "ca35def5ae56cec33dc2036731ab14896bc4c75dbb07a61f879f8e3afa4c7944001e21de9f98ddd8e2ad57527207fe"
            "b56253c9c94a9e496782ecfcb2a75fbcaf1b52948cc48daefe660c62119ab5000980c84831215f2441eba616548e83"
            "2985464cf17e51ee93109008399a21f7e13f",
        ),
        (
            "4d757272617920526f746862617264",
            "95ebc60d2b1fa672c1f46a8aa265ef51bfe38e7ccb39ec5be34069f144808843cb765f2caef0751b8f007572dab032"
            "2217755c0632f365717edbf34d33e87a",
        ),
        ("462e20412e20486179656b", "8153ca9833bc3c1b91a7e66e5f4d4f5b59bf9e64c2f20d15f0bba7"),
        ("4361726c204d656e676572", "07af0c9c86e1b4e80f36b04ff7688d51141af3debd0332f0a705ef"),
        (
            "4a65616e2d426170746973746520536179",
            "6ab1467c0448cc78394494abaaf23afce0e234315d6e2624dcbfa8a21c1c4d073d",
        ),
        (
            "457567656e2042f6686d20766f6e2042617765726b",
            "dfc346c0d2296ae6cf1acf6f12b8456a1dba228cf8d8b774aacf1c47fc53aa80ebc7a4c292",
        ),
    ],
}


def test_cacophony_ikpsk2_vector_through_our_handshake() -> None:
    v = VECTOR
    prologue = h(str(v["prologue"]))
    psk = h(str(v["psk"]))
    initiator = StaticIdentity.from_private_key(h(str(v["init_static"])))
    responder = StaticIdentity.from_private_key(h(str(v["resp_static"])))
    assert responder.public_key == h(str(v["init_remote_static"]))
    msgs = [(h(p), h(c)) for p, c in v["messages"]]  # type: ignore[union-attr]

    i_hs = Handshake(responder.public_key, psk)
    i_hs.precompute(initiator)
    r_hs = Handshake(initiator.public_key, psk)
    r_hs.precompute(responder)

    # -> e, es, s, ss
    body1 = handshake.write_initiation(i_hs, initiator, h(str(v["init_ephemeral"])), msgs[0][0], prologue)
    assert body1 == msgs[0][1]
    consumed = handshake.read_initiation(
        body1, responder, lambda s: r_hs if s == initiator.public_key else None, prologue
    )
    assert consumed is not None and consumed.payload == msgs[0][0]
    handshake.accept_initiation(consumed, sender=1, now=0.0)

    # <- e, ee, se, psk
    body2 = handshake.write_response(r_hs, h(str(v["resp_ephemeral"])), msgs[1][0])
    assert body2 == msgs[1][1]
    assert handshake.read_response(i_hs, body2, initiator) == msgs[1][0]
    # Every ciphertext above used the running hash as AD, so matching bytes prove h was right at each
    # step. (The file's "handshake_hash" field does not follow the Noise spec's GetHandshakeHash for
    # this or the plain NN vectors, so it is not compared.)
    assert i_hs.hash == r_hs.hash
    assert i_hs.chaining_key == r_hs.chaining_key

    i_send, i_recv = handshake.split(i_hs, initiator=True)
    r_send, r_recv = handshake.split(r_hs, initiator=False)
    assert (i_send, i_recv) == (r_recv, r_send)
    # transport: initiator and responder alternate, each counter starting at 0, empty AD
    for n, (payload, ciphertext) in enumerate(msgs[2:]):
        key = i_send if n % 2 == 0 else r_send
        assert crypto.aead_encrypt(key, n // 2, payload, b"") == ciphertext


def _pair() -> tuple[StaticIdentity, StaticIdentity, Handshake, Handshake]:
    rng = SeededRandom(5)
    a = StaticIdentity.from_private_key(generate_private_key(rng))
    b = StaticIdentity.from_private_key(generate_private_key(rng))
    a_hs, b_hs = Handshake(b.public_key), Handshake(a.public_key)
    a_hs.precompute(a)
    b_hs.precompute(b)
    return a, b, a_hs, b_hs


def test_wireguard_messages_sizes_and_keys() -> None:
    a, b, a_hs, b_hs = _pair()
    rng = SeededRandom(6)
    init = handshake.create_initiation(a_hs, a, generate_private_key(rng), crypto.tai64n(1e9), 0x11223344)
    assert len(init) == MESSAGE_INITIATION_SIZE and init[:4] == b"\x01\x00\x00\x00"
    assert init[4:8] == (0x11223344).to_bytes(4, "little")
    parsed = messages.parse_initiation(bytes(init))
    assert parsed is not None
    consumed = handshake.consume_initiation(parsed, b, lambda s: b_hs if s == a.public_key else None)
    assert consumed is not None and consumed.payload == crypto.tai64n(1e9)
    assert handshake.is_replay_or_flood(consumed, 10.0) is None
    handshake.accept_initiation(consumed, parsed.sender, 10.0)
    resp = handshake.create_response(b_hs, generate_private_key(rng), 0x55667788)
    assert len(resp) == MESSAGE_RESPONSE_SIZE and resp[:4] == b"\x02\x00\x00\x00"
    parsed_resp = messages.parse_response(bytes(resp))
    assert parsed_resp is not None and parsed_resp.receiver == 0x11223344
    assert handshake.consume_response(a_hs, parsed_resp, a)
    assert a_hs.state == HandshakeState.RESPONSE_CONSUMED and a_hs.remote_index == 0x55667788
    assert a_hs.chaining_key == b_hs.chaining_key
    # a response is consumed once
    assert not handshake.consume_response(a_hs, parsed_resp, a)


def test_initiation_replay_and_flood_rules() -> None:
    a, b, a_hs, b_hs = _pair()
    rng = SeededRandom(7)

    def initiation(wall: float) -> messages.MessageInitiation:
        msg = handshake.create_initiation(a_hs, a, generate_private_key(rng), crypto.tai64n(wall), 1)
        parsed = messages.parse_initiation(bytes(msg))
        assert parsed is not None
        return parsed

    def consume(msg: messages.MessageInitiation) -> handshake.ConsumedInitiation:
        c = handshake.consume_initiation(msg, b, lambda s: b_hs)
        assert c is not None
        return c

    first = initiation(1000.0)
    c1 = consume(first)
    handshake.accept_initiation(c1, 1, now=50.0)
    assert handshake.is_replay_or_flood(consume(first), 60.0) == "replay"  # same timestamp
    assert handshake.is_replay_or_flood(consume(initiation(999.0)), 60.0) == "replay"  # older
    newer = consume(initiation(1001.0))
    assert handshake.is_replay_or_flood(newer, 50.019) == "flood"  # within 20 ms of the last one
    assert handshake.is_replay_or_flood(newer, 50.021) is None


def test_low_order_peer_key_cannot_initiate() -> None:
    rng = SeededRandom(8)
    me = StaticIdentity.from_private_key(generate_private_key(rng))
    hs = Handshake(bytes(32))
    hs.precompute(me)
    assert hs.precomputed_static_static is None
    with pytest.raises(crypto.DHError):
        handshake.create_initiation(hs, me, generate_private_key(rng), crypto.tai64n(0), 1)
