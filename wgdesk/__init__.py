"""wgdesk: a WireGuard desktop client with its own userspace engine."""

__version__ = "0.1.0"
