"""Key pairs in WireGuard's base64 form for the editor and new tunnels (the codec is `wgdesk.proto.keys`)."""

from __future__ import annotations

import os

from wgdesk.proto import keys


def generate_private_key() -> str:
    """A fresh private key, base64 (as `wg genkey` prints it: clamped)."""
    return keys.to_base64(keys.generate_private_key(os.urandom))


def public_key(private_key: str) -> str | None:
    """The public key of a base64 private key (as `wg pubkey`), or None when it is not a valid key."""
    try:
        return keys.to_base64(keys.public_key(keys.from_base64(private_key)))
    except keys.InvalidKey:
        return None
