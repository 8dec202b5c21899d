"""Cookies and the mac1/mac2 fields (whitepaper §5.4.4, §5.4.7).

`CookieChecker` is the responder's side: mac1 is always checked; under load mac2 must carry a valid
cookie, else the sender gets a cookie reply. `CookieGenerator` is the initiator's side, one per peer:
it fills in mac1/mac2 and consumes cookie replies.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Callable

from wgdesk.proto import messages
from wgdesk.proto.changes import Endpoint
from wgdesk.proto.constants import (
    COOKIE_NONCE_SIZE,
    COOKIE_REFRESH_TIME,
    LABEL_COOKIE,
    LABEL_MAC1,
    MAC_SIZE,
)
from wgdesk.proto.crypto import InvalidTag, hash_, mac, xaead_decrypt, xaead_encrypt

_ZERO_MAC = bytes(MAC_SIZE)


def endpoint_bytes(addr: Endpoint) -> bytes:
    """The bytes a cookie is bound to: packed IP address ‖ big-endian port."""
    try:
        packed = ipaddress.ip_address(addr[0]).packed
    except ValueError:
        packed = addr[0].encode("utf-8", "replace")
    return packed + (addr[1] & 0xFFFF).to_bytes(2, "big")


class CookieChecker:
    """The responder's mac1/mac2 checks and cookie replies for one static public key."""

    __slots__ = ("_cookie_key", "_mac1_key", "_rng", "_secret", "_secret_set")

    def __init__(self, rng: Callable[[int], bytes]) -> None:
        self._rng = rng
        self._mac1_key = b""
        self._cookie_key = b""
        self._secret = b""
        self._secret_set: float | None = None

    def init(self, public_key: bytes | None) -> None:
        """Set (or with None, clear) our static public key."""
        if public_key is None:
            self._mac1_key = b""
            self._cookie_key = b""
        else:
            self._mac1_key = hash_(LABEL_MAC1 + public_key)
            self._cookie_key = hash_(LABEL_COOKIE + public_key)
        self._secret_set = None

    def check_mac1(self, msg: bytes) -> bool:
        """True if mac1 (bytes -32:-16) is MAC(HASH(label-mac1 ‖ our public key), msg before mac1)."""
        if not self._mac1_key:
            return False
        expected = mac(self._mac1_key, msg[:-32])
        return hmac.compare_digest(expected, msg[-32:-16])

    def check_mac2(self, msg: bytes, src: Endpoint, now: float) -> bool:
        """True if mac2 is MAC(cookie for `src`, msg before mac2) with a secret younger than 120 s."""
        if self._secret_set is None or now - self._secret_set > COOKIE_REFRESH_TIME:
            return False
        cookie = mac(self._secret, endpoint_bytes(src))
        return hmac.compare_digest(mac(cookie, msg[:-16]), msg[-16:])

    def create_reply(self, msg: bytes, receiver: int, src: Endpoint, now: float) -> bytes:
        """A cookie reply to `msg` (whose sender index is `receiver`), rotating the secret if stale."""
        if self._secret_set is None or now - self._secret_set > COOKIE_REFRESH_TIME:
            self._secret = self._rng(32)
            self._secret_set = now
        cookie = mac(self._secret, endpoint_bytes(src))
        nonce = self._rng(COOKIE_NONCE_SIZE)
        encrypted = xaead_encrypt(self._cookie_key, nonce, cookie, msg[-32:-16])
        return messages.pack_cookie_reply(receiver, nonce, encrypted)


class CookieGenerator:
    """The initiator's side for one peer: mac1/mac2 on our handshake messages, cookie replies."""

    __slots__ = ("_cookie", "_cookie_key", "_cookie_set", "_last_mac1", "_mac1_key")

    def __init__(self, peer_public_key: bytes) -> None:
        self._mac1_key = hash_(LABEL_MAC1 + peer_public_key)
        self._cookie_key = hash_(LABEL_COOKIE + peer_public_key)
        self._cookie = b""
        self._cookie_set: float | None = None
        self._last_mac1: bytes | None = None

    def add_macs(self, msg: bytearray, now: float) -> bytes:
        """Fill in mac1 and (with a cookie younger than 120 s) mac2; returns the finished message."""
        mac1 = mac(self._mac1_key, bytes(msg[:-32]))
        msg[-32:-16] = mac1
        self._last_mac1 = mac1
        if self._cookie_set is not None and now - self._cookie_set <= COOKIE_REFRESH_TIME:
            msg[-16:] = mac(self._cookie, bytes(msg[:-16]))
        else:
            msg[-16:] = _ZERO_MAC
        return bytes(msg)

    def consume_reply(self, reply: messages.MessageCookieReply, now: float) -> bool:
        """Decrypt a cookie reply against the mac1 we last sent; True if the cookie was stored."""
        if self._last_mac1 is None:
            return False
        try:
            cookie = xaead_decrypt(self._cookie_key, reply.nonce, reply.encrypted_cookie, self._last_mac1)
        except InvalidTag:
            return False
        self._cookie = cookie
        self._cookie_set = now
        self._last_mac1 = None
        return True
