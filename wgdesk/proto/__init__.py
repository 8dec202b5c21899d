"""Sans-I/O WireGuard: the protocol core (no sockets, files, clock or randomness of its own).

The engine drives a `Device`; see docs/architecture.md for the contract.
"""

from wgdesk.proto.changes import (
    NO_KEY,
    ConfigurationError,
    DeviceChange,
    DeviceSnapshot,
    Endpoint,
    PeerChange,
    PeerSnapshot,
)
from wgdesk.proto.device import Device
from wgdesk.proto.events import DropReason, Event

__all__ = [
    "NO_KEY",
    "ConfigurationError",
    "Device",
    "DeviceChange",
    "DeviceSnapshot",
    "DropReason",
    "Endpoint",
    "Event",
    "PeerChange",
    "PeerSnapshot",
]
