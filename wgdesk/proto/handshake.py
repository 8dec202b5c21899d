"""Noise_IKpsk2 as WireGuard uses it (whitepaper §5.4.2–5.4.5).

    IKpsk2:
      <- s
      ...
      -> e, es, s, ss        (initiation; payload = TAI64N timestamp)
      <- e, ee, se, psk      (response; empty payload)

The Noise core (`write_initiation`, `read_initiation`, `write_response`, `read_response`, `split`)
takes the prologue and payloads as arguments so that the published Noise test vectors can be run
through it; `create_*`/`consume_*` wrap it into WireGuard messages. Ephemeral keys and sender
indices are passed in: this module draws no randomness.
"""

from __future__ import annotations

import contextlib
import enum
from collections.abc import Callable
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from wgdesk.proto import messages
from wgdesk.proto.constants import CONSTRUCTION, HANDSHAKE_INITIATION_RATE, IDENTIFIER, KEY_SIZE, TAG_SIZE
from wgdesk.proto.crypto import (
    DHError,
    InvalidTag,
    aead_decrypt,
    aead_encrypt,
    dh,
    hash_,
    kdf1,
    kdf2,
    kdf3,
    private_key_object,
    public_key,
)

INITIAL_CHAINING_KEY = hash_(CONSTRUCTION)
INITIAL_HASH = hash_(INITIAL_CHAINING_KEY + IDENTIFIER)

_NO_PRESHARED_KEY = bytes(KEY_SIZE)


def initial_state(prologue: bytes = IDENTIFIER) -> tuple[bytes, bytes]:
    """(chaining key, hash) after the protocol name and the prologue are mixed in."""
    if prologue == IDENTIFIER:
        return INITIAL_CHAINING_KEY, INITIAL_HASH
    return INITIAL_CHAINING_KEY, hash_(INITIAL_CHAINING_KEY + prologue)


class HandshakeState(enum.IntEnum):
    """Where a peer's handshake stands (wireguard-go `handshakeState`)."""

    ZEROED = 0
    INITIATION_CREATED = 1
    INITIATION_CONSUMED = 2
    RESPONSE_CREATED = 3
    RESPONSE_CONSUMED = 4


@dataclass(frozen=True, slots=True)
class StaticIdentity:
    """The device's static key pair."""

    private_key: bytes
    public_key: bytes
    loaded: X25519PrivateKey = field(compare=False, repr=False)
    """The private key loaded once for DH (see `crypto.private_key_object`)."""

    @classmethod
    def from_private_key(cls, private_key: bytes) -> StaticIdentity:
        loaded = private_key_object(private_key)
        return cls(private_key, public_key(loaded), loaded)


class Handshake:
    """One peer's handshake state. `precomputed_static_static` is None for a low-order peer key
    (or no private key): such a peer can neither initiate nor be answered."""

    __slots__ = (
        "chaining_key",
        "hash",
        "last_initiation_consumed",
        "latest_timestamp",
        "local_ephemeral",
        "local_index",
        "precomputed_static_static",
        "preshared_key",
        "remote_ephemeral",
        "remote_index",
        "remote_static",
        "state",
    )

    def __init__(self, remote_static: bytes, preshared_key: bytes = _NO_PRESHARED_KEY) -> None:
        self.remote_static = remote_static
        self.preshared_key = preshared_key
        self.precomputed_static_static: bytes | None = None
        self.latest_timestamp = bytes(12)
        self.last_initiation_consumed: float | None = None
        self.clear()

    def precompute(self, identity: StaticIdentity | None) -> None:
        """Recompute DH(S_priv, S_pub_peer) after either static key changed."""
        self.precomputed_static_static = None
        if identity is not None:
            with contextlib.suppress(DHError):
                self.precomputed_static_static = dh(identity.loaded, self.remote_static)

    def clear(self) -> None:
        """Forget the ephemeral state (not the replay timestamp)."""
        self.state = HandshakeState.ZEROED
        self.local_index = 0
        self.remote_index = 0
        self.chaining_key = b""
        self.hash = b""
        self.local_ephemeral = b""
        self.remote_ephemeral = b""


# --- Noise core ---------------------------------------------------------------------------------------


def write_initiation(
    hs: Handshake,
    identity: StaticIdentity,
    ephemeral_private: bytes,
    payload: bytes,
    prologue: bytes = IDENTIFIER,
) -> bytes:
    """Message 1 body: e ‖ AEAD(s) ‖ AEAD(payload). Raises `DHError` for a low-order peer key."""
    if hs.precomputed_static_static is None:
        raise DHError("no static-static secret with this peer (low-order key or no private key)")
    ck, h = initial_state(prologue)
    h = hash_(h + hs.remote_static)
    ephemeral = private_key_object(ephemeral_private)
    e_pub = public_key(ephemeral)
    ck = kdf1(ck, e_pub)
    h = hash_(h + e_pub)
    ck, key = kdf2(ck, dh(ephemeral, hs.remote_static))
    enc_static = aead_encrypt(key, 0, identity.public_key, h)
    h = hash_(h + enc_static)
    ck, key = kdf2(ck, hs.precomputed_static_static)
    enc_payload = aead_encrypt(key, 0, payload, h)
    h = hash_(h + enc_payload)
    hs.chaining_key = ck
    hs.hash = h
    hs.local_ephemeral = ephemeral_private
    hs.remote_ephemeral = b""
    hs.state = HandshakeState.INITIATION_CREATED
    return e_pub + enc_static + enc_payload


@dataclass(frozen=True, slots=True)
class ConsumedInitiation:
    """A decrypted message 1, not yet committed to the peer's handshake."""

    handshake: Handshake
    remote_ephemeral: bytes
    chaining_key: bytes
    hash: bytes
    payload: bytes


def read_initiation(
    body: bytes,
    identity: StaticIdentity,
    lookup: Callable[[bytes], Handshake | None],
    prologue: bytes = IDENTIFIER,
) -> ConsumedInitiation | None:
    """Decrypt a message 1 body; `lookup(initiator_static)` finds the peer. `None` when invalid."""
    if len(body) < KEY_SIZE + KEY_SIZE + TAG_SIZE + TAG_SIZE:
        return None
    e = body[:32]
    enc_static = body[32:80]
    enc_payload = body[80:]
    ck, h = initial_state(prologue)
    h = hash_(h + identity.public_key)
    ck = kdf1(ck, e)
    h = hash_(h + e)
    try:
        ck, key = kdf2(ck, dh(identity.loaded, e))
        remote_static = aead_decrypt(key, 0, enc_static, h)
    except (DHError, InvalidTag):
        return None
    h = hash_(h + enc_static)
    hs = lookup(remote_static)
    if hs is None or hs.precomputed_static_static is None:
        return None
    ck, key = kdf2(ck, hs.precomputed_static_static)
    try:
        payload = aead_decrypt(key, 0, enc_payload, h)
    except InvalidTag:
        return None
    h = hash_(h + enc_payload)
    return ConsumedInitiation(hs, e, ck, h, payload)


def write_response(hs: Handshake, ephemeral_private: bytes, payload: bytes = b"") -> bytes:
    """Message 2 body: e ‖ AEAD(payload). Requires a consumed initiation; raises `DHError`."""
    if hs.state != HandshakeState.INITIATION_CONSUMED:
        raise ValueError("no consumed initiation to respond to")
    ephemeral = private_key_object(ephemeral_private)
    e_pub = public_key(ephemeral)
    h = hash_(hs.hash + e_pub)
    ck = kdf1(hs.chaining_key, e_pub)
    ck = kdf1(ck, dh(ephemeral, hs.remote_ephemeral))
    ck = kdf1(ck, dh(ephemeral, hs.remote_static))
    ck, tau, key = kdf3(ck, hs.preshared_key)
    h = hash_(h + tau)
    enc = aead_encrypt(key, 0, payload, h)
    h = hash_(h + enc)
    hs.chaining_key = ck
    hs.hash = h
    hs.local_ephemeral = ephemeral_private
    hs.state = HandshakeState.RESPONSE_CREATED
    return e_pub + enc


def read_response(hs: Handshake, body: bytes, identity: StaticIdentity) -> bytes | None:
    """Decrypt a message 2 body for our outstanding initiation; commits only on success."""
    if hs.state != HandshakeState.INITIATION_CREATED or len(body) < KEY_SIZE + TAG_SIZE:
        return None
    e = body[:32]
    enc = body[32:]
    h = hash_(hs.hash + e)
    ck = kdf1(hs.chaining_key, e)
    try:
        ck = kdf1(ck, dh(hs.local_ephemeral, e))
        ck = kdf1(ck, dh(identity.loaded, e))
    except DHError:
        return None
    ck, tau, key = kdf3(ck, hs.preshared_key)
    h = hash_(h + tau)
    try:
        payload = aead_decrypt(key, 0, enc, h)
    except InvalidTag:
        return None
    h = hash_(h + enc)
    hs.chaining_key = ck
    hs.hash = h
    hs.remote_ephemeral = e
    hs.state = HandshakeState.RESPONSE_CONSUMED
    return payload


def split(hs: Handshake, initiator: bool) -> tuple[bytes, bytes]:
    """(sending key, receiving key) from the final chaining key; then forgets the handshake secrets."""
    first, second = kdf2(hs.chaining_key, b"")
    hs.chaining_key = b""
    hs.hash = b""
    hs.local_ephemeral = b""
    hs.remote_ephemeral = b""
    hs.state = HandshakeState.ZEROED
    return (first, second) if initiator else (second, first)


# --- WireGuard messages -------------------------------------------------------------------------------


def create_initiation(
    hs: Handshake, identity: StaticIdentity, ephemeral_private: bytes, timestamp: bytes, sender_index: int
) -> bytearray:
    """A 148-byte initiation with zero macs; sets `hs.local_index`. Raises `DHError` (low-order key)."""
    body = write_initiation(hs, identity, ephemeral_private, timestamp)
    hs.local_index = sender_index
    return messages.pack_initiation(sender_index, body[:32], body[32:80], body[80:])


def consume_initiation(
    msg: messages.MessageInitiation,
    identity: StaticIdentity,
    lookup: Callable[[bytes], Handshake | None],
) -> ConsumedInitiation | None:
    """Decrypt an initiation (macs already checked); `accept_initiation` then commits it."""
    body = msg.ephemeral + msg.encrypted_static + msg.encrypted_timestamp
    return read_initiation(body, identity, lookup)


def is_replay_or_flood(consumed: ConsumedInitiation, now: float) -> str | None:
    """ "replay" unless the timestamp is the greatest seen from this peer; "flood" if an initiation was
    consumed less than 20 ms ago; else None."""
    hs = consumed.handshake
    if consumed.payload <= hs.latest_timestamp:  # 12 bytes big-endian: bytes order is time order
        return "replay"
    if (
        hs.last_initiation_consumed is not None
        and now - hs.last_initiation_consumed <= HANDSHAKE_INITIATION_RATE
    ):
        return "flood"
    return None


def accept_initiation(consumed: ConsumedInitiation, sender: int, now: float) -> None:
    """Commit a consumed initiation to the peer's handshake (state INITIATION_CONSUMED)."""
    hs = consumed.handshake
    hs.chaining_key = consumed.chaining_key
    hs.hash = consumed.hash
    hs.remote_ephemeral = consumed.remote_ephemeral
    hs.remote_index = sender
    hs.latest_timestamp = consumed.payload
    hs.last_initiation_consumed = now
    hs.state = HandshakeState.INITIATION_CONSUMED


def create_response(hs: Handshake, ephemeral_private: bytes, sender_index: int) -> bytearray:
    """A 92-byte response with zero macs; sets `hs.local_index`. Raises `DHError`."""
    body = write_response(hs, ephemeral_private)
    hs.local_index = sender_index
    return messages.pack_response(sender_index, hs.remote_index, body[:32], body[32:])


def consume_response(hs: Handshake, msg: messages.MessageResponse, identity: StaticIdentity) -> bool:
    """Process a response to our initiation; True when the handshake is complete."""
    if read_response(hs, msg.ephemeral + msg.encrypted_nothing, identity) is None:
        return False
    hs.remote_index = msg.sender
    return True
