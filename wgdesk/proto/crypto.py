"""The cryptographic primitives of the whitepaper (§5.4), over `hashlib`, `cryptography` and PyNaCl.

No primitive is implemented here; this module only names and composes them:

* HASH  — BLAKE2s-256
* MAC   — keyed BLAKE2s with a 16-byte digest (mac1, mac2, cookies)
* HMAC  — HMAC over BLAKE2s-256 (only inside KDF)
* KDF1/2/3 — HKDF with HMAC-BLAKE2s
* DH    — X25519; an all-zero result is refused (`DHError`)
* AEAD  — ChaCha20-Poly1305, nonce = 4 zero bytes ‖ 64-bit little-endian counter
* XAEAD — XChaCha20-Poly1305 (cookie replies)
* TAI64N — 12-byte timestamps, nanoseconds whitened to multiples of 2^24
"""

from __future__ import annotations

import hashlib
import hmac
import struct

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from nacl.bindings import (
    crypto_aead_xchacha20poly1305_ietf_decrypt,
    crypto_aead_xchacha20poly1305_ietf_encrypt,
)
from nacl.exceptions import CryptoError

from wgdesk.proto.constants import TAI64N_BASE, TAI64N_WHITENER

__all__ = [
    "AEAD",
    "DHError",
    "InvalidTag",
    "aead_decrypt",
    "aead_encrypt",
    "aead_nonce",
    "dh",
    "hash_",
    "hmac_",
    "kdf1",
    "kdf2",
    "kdf3",
    "mac",
    "private_key_object",
    "public_key",
    "tai64n",
    "xaead_decrypt",
    "xaead_encrypt",
]

AEAD = ChaCha20Poly1305
"""The transport AEAD class; keypairs build one instance per direction and reuse it."""

_ZERO32 = bytes(32)
_NONCE_PREFIX = bytes(4)
_ONE = b"\x01"
_TWO = b"\x02"
_THREE = b"\x03"
_TAI64N = struct.Struct(">QI")


class DHError(ValueError):
    """X25519 produced the all-zero shared secret (a low-order public key)."""


def hash_(data: bytes) -> bytes:
    """HASH(data): BLAKE2s with a 32-byte digest."""
    return hashlib.blake2s(data).digest()


def mac(key: bytes, data: bytes) -> bytes:
    """MAC(key, data): keyed BLAKE2s with a 16-byte digest (not HMAC)."""
    return hashlib.blake2s(data, digest_size=16, key=key).digest()


def hmac_(key: bytes, data: bytes) -> bytes:
    """HMAC(key, data) with BLAKE2s-256 (block size 64)."""
    return hmac.digest(key, data, "blake2s")


def kdf1(key: bytes, data: bytes) -> bytes:
    """KDF1: the first HKDF output."""
    t0 = hmac.digest(key, data, "blake2s")
    return hmac.digest(t0, _ONE, "blake2s")


def kdf2(key: bytes, data: bytes) -> tuple[bytes, bytes]:
    """KDF2: the first two HKDF outputs."""
    t0 = hmac.digest(key, data, "blake2s")
    t1 = hmac.digest(t0, _ONE, "blake2s")
    t2 = hmac.digest(t0, t1 + _TWO, "blake2s")
    return t1, t2


def kdf3(key: bytes, data: bytes) -> tuple[bytes, bytes, bytes]:
    """KDF3: the first three HKDF outputs."""
    t0 = hmac.digest(key, data, "blake2s")
    t1 = hmac.digest(t0, _ONE, "blake2s")
    t2 = hmac.digest(t0, t1 + _TWO, "blake2s")
    t3 = hmac.digest(t0, t2 + _THREE, "blake2s")
    return t1, t2, t3


def private_key_object(private_key: bytes) -> X25519PrivateKey:
    """The loaded form of a 32-byte private key, for repeated `dh`/`public_key` calls.

    Loading costs a scalar multiplication (the library derives the public key), as much as a DH:
    a key used more than once is loaded once.
    """
    return X25519PrivateKey.from_private_bytes(private_key)


def public_key(private_key: bytes | X25519PrivateKey) -> bytes:
    """The X25519 public key of a 32-byte private key (clamped by X25519 itself)."""
    if isinstance(private_key, bytes):
        private_key = X25519PrivateKey.from_private_bytes(private_key)
    return private_key.public_key().public_bytes_raw()


def dh(private_key: bytes | X25519PrivateKey, public_key: bytes) -> bytes:
    """X25519(private_key, public_key); the private key as bytes or from `private_key_object`.

    Raises `DHError` when the result is all zeros (RFC 7748 §6.1: a low-order point).
    """
    if isinstance(private_key, bytes):
        private_key = X25519PrivateKey.from_private_bytes(private_key)
    try:
        shared = private_key.exchange(X25519PublicKey.from_public_bytes(public_key))
    except ValueError as exc:  # OpenSSL refuses the all-zero result itself
        raise DHError("X25519 result is all zeros") from exc
    if shared == _ZERO32:
        raise DHError("X25519 result is all zeros")
    return shared


def aead_nonce(counter: int) -> bytes:
    """The 12-byte AEAD nonce for a 64-bit counter."""
    return _NONCE_PREFIX + counter.to_bytes(8, "little")


def aead_encrypt(key: bytes, counter: int, plaintext: bytes, associated_data: bytes) -> bytes:
    """AEAD(key, counter, plaintext, ad): ChaCha20-Poly1305, ciphertext ‖ 16-byte tag."""
    return ChaCha20Poly1305(key).encrypt(aead_nonce(counter), plaintext, associated_data)


def aead_decrypt(key: bytes, counter: int, ciphertext: bytes, associated_data: bytes) -> bytes:
    """Inverse of `aead_encrypt`; raises `InvalidTag` on any forgery."""
    return ChaCha20Poly1305(key).decrypt(aead_nonce(counter), ciphertext, associated_data)


def xaead_encrypt(key: bytes, nonce: bytes, plaintext: bytes, associated_data: bytes) -> bytes:
    """XAEAD(key, nonce, plaintext, ad): XChaCha20-Poly1305 with a 24-byte nonce."""
    return crypto_aead_xchacha20poly1305_ietf_encrypt(plaintext, associated_data, nonce, key)


def xaead_decrypt(key: bytes, nonce: bytes, ciphertext: bytes, associated_data: bytes) -> bytes:
    """Inverse of `xaead_encrypt`; raises `InvalidTag` on any forgery."""
    try:
        return crypto_aead_xchacha20poly1305_ietf_decrypt(ciphertext, associated_data, nonce, key)
    except CryptoError as exc:
        raise InvalidTag() from exc


def tai64n(wall_clock: float) -> bytes:
    """TAI64N label of a Unix time: BE u64 (2^62 + 10 + seconds) ‖ BE u32 nanoseconds.

    Nanoseconds are rounded down to a multiple of 2^24 so that the timestamp does not leak a
    precise clock (wireguard-go `tai64n`).
    """
    seconds = int(wall_clock // 1)
    nanos = int((wall_clock - seconds) * 1e9)
    nanos = min(nanos, 999_999_999)
    nanos -= nanos % TAI64N_WHITENER
    return _TAI64N.pack(TAI64N_BASE + seconds, nanos)
