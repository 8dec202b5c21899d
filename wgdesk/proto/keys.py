"""Keys: generation from injected random bytes, public-key derivation, base64 and hex encodings."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable

from wgdesk.proto.constants import KEY_SIZE
from wgdesk.proto.crypto import public_key as _public_key

__all__ = [
    "InvalidKey",
    "clamp",
    "from_base64",
    "from_hex",
    "generate_preshared_key",
    "generate_private_key",
    "public_key",
    "to_base64",
    "to_hex",
]


class InvalidKey(ValueError):
    """A key string or byte string that is not a 32-byte key."""


def clamp(key: bytes) -> bytes:
    """Clamp 32 random bytes to a Curve25519 private key (RFC 7748 §5), as `wg genkey` does."""
    if len(key) != KEY_SIZE:
        raise InvalidKey(f"a private key is {KEY_SIZE} bytes, got {len(key)}")
    b = bytearray(key)
    b[0] &= 248
    b[31] = (b[31] & 127) | 64
    return bytes(b)


def generate_private_key(rng: Callable[[int], bytes]) -> bytes:
    """A new clamped private key from `rng(32)`."""
    return clamp(rng(KEY_SIZE))


def generate_preshared_key(rng: Callable[[int], bytes]) -> bytes:
    """A new preshared key: 32 random bytes."""
    key = rng(KEY_SIZE)
    if len(key) != KEY_SIZE:
        raise InvalidKey(f"rng returned {len(key)} bytes, expected {KEY_SIZE}")
    return key


def public_key(private_key: bytes) -> bytes:
    """The public key for a private key."""
    if len(private_key) != KEY_SIZE:
        raise InvalidKey(f"a private key is {KEY_SIZE} bytes, got {len(private_key)}")
    return _public_key(private_key)


def to_base64(key: bytes) -> str:
    """The 44-character base64 form used in `.conf` files and by `wg`."""
    return base64.b64encode(key).decode("ascii")


def from_base64(text: str) -> bytes:
    """Decode a base64 key; raises `InvalidKey` unless it is exactly 32 bytes of canonical base64."""
    text = text.strip()
    if len(text) != 44 or not text.endswith("="):
        raise InvalidKey("a key is 44 characters of base64 ending in '='")
    try:
        key = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidKey(f"not valid base64: {exc}") from None
    if len(key) != KEY_SIZE or base64.b64encode(key).decode("ascii") != text:
        raise InvalidKey("not a canonical base64 encoding of 32 bytes")
    return key


def to_hex(key: bytes) -> str:
    """The lowercase hex form used by UAPI."""
    return key.hex()


def from_hex(text: str) -> bytes:
    """Decode a 64-character hex key; raises `InvalidKey` otherwise."""
    if len(text) != 2 * KEY_SIZE:
        raise InvalidKey("a hex key is 64 characters")
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise InvalidKey("not valid hex") from None
