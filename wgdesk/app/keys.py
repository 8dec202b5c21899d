"""Curve25519 key pairs in WireGuard's base64 form (via `cryptography`), for the editor and new tunnels."""

from __future__ import annotations

import base64
import binascii

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat


def generate_private_key() -> str:
    """A fresh private key, base64 (as `wg genkey` prints it)."""
    raw = X25519PrivateKey.generate().private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    return base64.b64encode(raw).decode()


def public_key(private_key: str) -> str | None:
    """The public key of a base64 private key (as `wg pubkey`), or None when it is not a valid key."""
    try:
        raw = base64.b64decode(private_key.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    if len(raw) != 32:
        return None
    pub = X25519PrivateKey.from_private_bytes(raw).public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return base64.b64encode(pub).decode()
