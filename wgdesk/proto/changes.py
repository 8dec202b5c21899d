"""Configuration changes applied to a `Device`, and the snapshot it reports.

These are the data UAPI `set=1` decodes to and `get=1` encodes from; the engine passes them
between `wgdesk.uapi` and `wgdesk.proto.device` without looking inside.
"""

from __future__ import annotations

import errno
from collections.abc import Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Network, IPv6Network

Endpoint = tuple[str, int]
"""A UDP endpoint: (IP address string without brackets, port)."""

Network = IPv4Network | IPv6Network

NO_KEY = bytes(32)
"""The all-zero key: in a change it means "remove the key"."""


class ConfigurationError(Exception):
    """A change the device refuses; `errno` is what UAPI reports (`errno=N`)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.errno = code
        self.message = message

    @classmethod
    def invalid(cls, message: str) -> ConfigurationError:
        return cls(errno.EINVAL, message)


@dataclass(frozen=True, slots=True)
class PeerChange:
    """One `public_key=` block of a UAPI set request.

    `None` means "leave unchanged"; `preshared_key == NO_KEY` removes the preshared key.
    """

    public_key: bytes
    remove: bool = False
    update_only: bool = False
    preshared_key: bytes | None = None
    endpoint: Endpoint | None = None
    persistent_keepalive: int | None = None
    replace_allowed_ips: bool = False
    allowed_ips: tuple[Network, ...] = ()
    protocol_version: int | None = None


@dataclass(frozen=True, slots=True)
class DeviceChange:
    """A whole UAPI set request. `private_key == NO_KEY` removes the private key."""

    private_key: bytes | None = None
    listen_port: int | None = None
    fwmark: int | None = None
    replace_peers: bool = False
    peers: tuple[PeerChange, ...] = ()


@dataclass(frozen=True, slots=True)
class PeerCounters:
    """What happened to one peer's handshakes and packets since it was configured: the evidence the
    doctor and the helper's diagnosis reason over (`wgdesk.diagnosis`), as numbers rather than log text.

    `dropped` counts by `DropReason` value the datagrams and packets dropped that belong to this peer:
    those of its sessions, and handshake messages from its current endpoint that authenticate as no one
    (a wrong key on one side looks like that).
    """

    initiations_sent: int = 0
    responses_received: int = 0
    responses_sent: int = 0
    cookie_replies_sent: int = 0
    cookie_replies_received: int = 0
    dropped: Mapping[str, int] = field(default_factory=dict)

    @classmethod
    def of(cls, counts: Mapping[str, int], dropped: Mapping[str, int]) -> PeerCounters:
        """From the plain counts by `COUNTER_FIELDS` name (missing ones are 0) and the drops by reason."""
        return cls(
            initiations_sent=counts.get("initiations_sent", 0),
            responses_received=counts.get("responses_received", 0),
            responses_sent=counts.get("responses_sent", 0),
            cookie_replies_sent=counts.get("cookie_replies_sent", 0),
            cookie_replies_received=counts.get("cookie_replies_received", 0),
            dropped=dict(dropped),
        )


COUNTER_FIELDS = ("initiations_sent", "responses_received", "responses_sent", "cookie_replies_sent",
                  "cookie_replies_received")
"""The plain counts of `PeerCounters`, in the order UAPI reports them."""


@dataclass(frozen=True, slots=True)
class PeerSnapshot:
    """What UAPI `get=1` reports for one peer. `last_handshake` is wall-clock seconds or None."""

    public_key: bytes
    preshared_key: bytes | None
    endpoint: Endpoint | None
    persistent_keepalive: int
    allowed_ips: tuple[Network, ...]
    last_handshake: float | None
    rx_bytes: int
    tx_bytes: int
    protocol_version: int = 1
    counters: PeerCounters = PeerCounters()


@dataclass(frozen=True, slots=True)
class DeviceSnapshot:
    """What UAPI `get=1` reports for the device; `dropped` counts dropped packets by reason."""

    private_key: bytes | None
    public_key: bytes | None
    listen_port: int
    fwmark: int
    peers: tuple[PeerSnapshot, ...]
    dropped: Mapping[str, int] = field(default_factory=dict)
