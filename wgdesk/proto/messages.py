"""Wire formats of the four WireGuard messages (whitepaper §5.4).

All integers are little-endian. The first four bytes are the message type as a u32, so the three
"reserved" bytes must be zero. Parsers return `None` for anything malformed: network input never
raises. The transport path uses the `struct` objects directly and builds no message objects.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

from wgdesk.proto.constants import (
    MESSAGE_COOKIE_REPLY_SIZE,
    MESSAGE_COOKIE_REPLY_TYPE,
    MESSAGE_INITIATION_SIZE,
    MESSAGE_INITIATION_TYPE,
    MESSAGE_RESPONSE_SIZE,
    MESSAGE_RESPONSE_TYPE,
    MESSAGE_TRANSPORT_HEADER_SIZE,
    MESSAGE_TRANSPORT_SIZE,
    MESSAGE_TRANSPORT_TYPE,
)

INITIATION_PREFIX: Final = struct.pack("<I", MESSAGE_INITIATION_TYPE)
RESPONSE_PREFIX: Final = struct.pack("<I", MESSAGE_RESPONSE_TYPE)
COOKIE_REPLY_PREFIX: Final = struct.pack("<I", MESSAGE_COOKIE_REPLY_TYPE)
TRANSPORT_PREFIX: Final = struct.pack("<I", MESSAGE_TRANSPORT_TYPE)

TYPE: Final = struct.Struct("<I")
INDEX: Final = struct.Struct("<I")
TRANSPORT_HEADER: Final = struct.Struct("<IIQ")  # type, receiver, counter
"""Unpack with `TRANSPORT_HEADER.unpack_from(data)`; pack with `transport_header`."""

_INITIATION: Final = struct.Struct("<II32s48s28s16s16s")
_RESPONSE: Final = struct.Struct("<III32s16s16s16s")
_COOKIE_REPLY: Final = struct.Struct("<II24s32s")

MAC1_OFFSET_INITIATION: Final = MESSAGE_INITIATION_SIZE - 32
MAC1_OFFSET_RESPONSE: Final = MESSAGE_RESPONSE_SIZE - 32


@dataclass(frozen=True, slots=True)
class MessageInitiation:
    """Handshake initiation (type 1, 148 bytes)."""

    sender: int
    ephemeral: bytes
    encrypted_static: bytes
    encrypted_timestamp: bytes
    mac1: bytes
    mac2: bytes


@dataclass(frozen=True, slots=True)
class MessageResponse:
    """Handshake response (type 2, 92 bytes)."""

    sender: int
    receiver: int
    ephemeral: bytes
    encrypted_nothing: bytes
    mac1: bytes
    mac2: bytes


@dataclass(frozen=True, slots=True)
class MessageCookieReply:
    """Cookie reply (type 3, 64 bytes)."""

    receiver: int
    nonce: bytes
    encrypted_cookie: bytes


def pack_initiation(
    sender: int, ephemeral: bytes, encrypted_static: bytes, encrypted_timestamp: bytes
) -> bytearray:
    """An initiation with mac1 and mac2 zero (the cookie generator fills them in)."""
    out = bytearray(MESSAGE_INITIATION_SIZE)
    _INITIATION.pack_into(
        out, 0, MESSAGE_INITIATION_TYPE, sender, ephemeral, encrypted_static, encrypted_timestamp, b"", b""
    )
    return out


def pack_response(sender: int, receiver: int, ephemeral: bytes, encrypted_nothing: bytes) -> bytearray:
    """A response with mac1 and mac2 zero."""
    out = bytearray(MESSAGE_RESPONSE_SIZE)
    _RESPONSE.pack_into(
        out, 0, MESSAGE_RESPONSE_TYPE, sender, receiver, ephemeral, encrypted_nothing, b"", b""
    )
    return out


def pack_cookie_reply(receiver: int, nonce: bytes, encrypted_cookie: bytes) -> bytes:
    """A complete cookie reply."""
    return _COOKIE_REPLY.pack(MESSAGE_COOKIE_REPLY_TYPE, receiver, nonce, encrypted_cookie)


def transport_header(receiver: int, counter: int) -> bytes:
    """The 16-byte transport header."""
    return TRANSPORT_HEADER.pack(MESSAGE_TRANSPORT_TYPE, receiver, counter)


def message_type(data: bytes) -> int:
    """The message type (1–4) if `data` has a known type and a valid size for it, else 0."""
    n = len(data)
    if n < 4:
        return 0
    kind: int = TYPE.unpack_from(data)[0]
    if kind == MESSAGE_TRANSPORT_TYPE:
        return kind if n >= MESSAGE_TRANSPORT_SIZE else 0
    if kind == MESSAGE_INITIATION_TYPE:
        return kind if n == MESSAGE_INITIATION_SIZE else 0
    if kind == MESSAGE_RESPONSE_TYPE:
        return kind if n == MESSAGE_RESPONSE_SIZE else 0
    if kind == MESSAGE_COOKIE_REPLY_TYPE:
        return kind if n == MESSAGE_COOKIE_REPLY_SIZE else 0
    return 0


def parse_initiation(data: bytes) -> MessageInitiation | None:
    """Parse an initiation; `None` unless it is exactly 148 bytes of type 1."""
    if len(data) != MESSAGE_INITIATION_SIZE:
        return None
    kind, sender, eph, static, ts, mac1, mac2 = _INITIATION.unpack(data)
    if kind != MESSAGE_INITIATION_TYPE:
        return None
    return MessageInitiation(sender, eph, static, ts, mac1, mac2)


def parse_response(data: bytes) -> MessageResponse | None:
    """Parse a response; `None` unless it is exactly 92 bytes of type 2."""
    if len(data) != MESSAGE_RESPONSE_SIZE:
        return None
    kind, sender, receiver, eph, empty, mac1, mac2 = _RESPONSE.unpack(data)
    if kind != MESSAGE_RESPONSE_TYPE:
        return None
    return MessageResponse(sender, receiver, eph, empty, mac1, mac2)


def parse_cookie_reply(data: bytes) -> MessageCookieReply | None:
    """Parse a cookie reply; `None` unless it is exactly 64 bytes of type 3."""
    if len(data) != MESSAGE_COOKIE_REPLY_SIZE:
        return None
    kind, receiver, nonce, cookie = _COOKIE_REPLY.unpack(data)
    if kind != MESSAGE_COOKIE_REPLY_TYPE:
        return None
    return MessageCookieReply(receiver, nonce, cookie)


__all__ = [
    "COOKIE_REPLY_PREFIX",
    "INDEX",
    "INITIATION_PREFIX",
    "MAC1_OFFSET_INITIATION",
    "MAC1_OFFSET_RESPONSE",
    "MESSAGE_TRANSPORT_HEADER_SIZE",
    "RESPONSE_PREFIX",
    "TRANSPORT_HEADER",
    "TRANSPORT_PREFIX",
    "TYPE",
    "MessageCookieReply",
    "MessageInitiation",
    "MessageResponse",
    "message_type",
    "pack_cookie_reply",
    "pack_initiation",
    "pack_response",
    "parse_cookie_reply",
    "parse_initiation",
    "parse_response",
    "transport_header",
]
