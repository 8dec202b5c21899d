"""Events a `Device` reports through `next_event()`; frozen dataclasses, oldest dropped when full."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from wgdesk.proto.changes import Endpoint


class DropReason(enum.StrEnum):
    """Why a datagram or packet was dropped; the keys of `DeviceSnapshot.dropped`."""

    INVALID_MESSAGE = "invalid_message"  # unknown type, wrong size, nonzero reserved bytes
    NO_PRIVATE_KEY = "no_private_key"
    INVALID_MAC1 = "invalid_mac1"
    INVALID_MAC2 = "invalid_mac2"  # under load without a valid cookie (a cookie reply was sent)
    RATE_LIMITED = "rate_limited"
    INVALID_HANDSHAKE = "invalid_handshake"  # failed to decrypt/authenticate, unknown peer
    REPLAYED_INITIATION = "replayed_initiation"
    INITIATION_FLOOD = "initiation_flood"
    INVALID_COOKIE_REPLY = "invalid_cookie_reply"
    UNKNOWN_INDEX = "unknown_index"
    KEYPAIR_EXPIRED = "keypair_expired"
    DECRYPTION_FAILED = "decryption_failed"
    REPLAYED_COUNTER = "replayed_counter"
    INVALID_INNER_PACKET = "invalid_inner_packet"
    SOURCE_NOT_ALLOWED = "source_not_allowed"
    NO_ROUTE = "no_route"  # outbound: no peer's allowed IPs contain the destination
    NO_ENDPOINT = "no_endpoint"
    STAGED_OVERFLOW = "staged_overflow"
    HANDSHAKE_GAVE_UP = "handshake_gave_up"  # staged packets flushed after Rekey-Attempt-Time


@dataclass(frozen=True, slots=True)
class Event:
    """Base class of all device events."""


@dataclass(frozen=True, slots=True)
class HandshakeInitiationSent(Event):
    public_key: bytes
    endpoint: Endpoint
    retry: bool


@dataclass(frozen=True, slots=True)
class HandshakeResponseSent(Event):
    public_key: bytes
    endpoint: Endpoint


@dataclass(frozen=True, slots=True)
class HandshakeCompleted(Event):
    """A new session keypair was derived; `initiator` says which side we were."""

    public_key: bytes
    initiator: bool


@dataclass(frozen=True, slots=True)
class HandshakeGaveUp(Event):
    """No response after Rekey-Attempt-Time (20 initiations); staged packets were dropped."""

    public_key: bytes
    attempts: int


@dataclass(frozen=True, slots=True)
class CookieReplySent(Event):
    endpoint: Endpoint


@dataclass(frozen=True, slots=True)
class CookieReplyReceived(Event):
    public_key: bytes


@dataclass(frozen=True, slots=True)
class EndpointChanged(Event):
    public_key: bytes
    old: Endpoint | None
    new: Endpoint


@dataclass(frozen=True, slots=True)
class KeypairExpired(Event):
    """All session keys of a peer were zeroed (540 s after the last handshake)."""

    public_key: bytes


@dataclass(frozen=True, slots=True)
class UnderLoad(Event):
    """The device entered the under-load state: handshakes now need a valid mac2."""

    until: float


@dataclass(frozen=True, slots=True)
class PacketDropped(Event):
    reason: DropReason
    public_key: bytes | None = None
    endpoint: Endpoint | None = None


__all__ = [
    "CookieReplyReceived",
    "CookieReplySent",
    "DropReason",
    "EndpointChanged",
    "Event",
    "HandshakeCompleted",
    "HandshakeGaveUp",
    "HandshakeInitiationSent",
    "HandshakeResponseSent",
    "KeypairExpired",
    "PacketDropped",
    "UnderLoad",
]
