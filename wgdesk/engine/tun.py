"""The engine's tunnel device: created or adopted through the running OS's backend.

What the engine reads and writes is a `wgdesk.platforms.interface.Tun` (wireguard-go's
``tun.Device``); each OS implements it in its backend (`wgdesk.platforms.linux.tun` on Linux), so
this module imports nothing OS-specific and the engine's other modules import on every OS.
"""

from __future__ import annotations

from wgdesk import platforms
from wgdesk.platforms.interface import Tun, TunError, TunGone

DEFAULT_MTU = 1420
"""wireguard-go's default MTU for a new interface."""


def create(name: str, mtu: int = DEFAULT_MTU, vnet_hdr: bool = True) -> Tun:
    """Create (or attach to) the tunnel interface ``name`` with MTU ``mtu`` (``vnet_hdr=False``: the
    portable path's plain device). Raises `TunError` with the reason the OS gave."""
    return platforms.backend().tun.create(name, mtu, vnet_hdr)


def adopt(fd: int) -> Tun:
    """Adopt an open tunnel device handed over (``WG_TUN_FD``). Raises `TunError`."""
    return platforms.backend().tun.adopt(fd)


__all__ = ["DEFAULT_MTU", "Tun", "TunError", "TunGone", "adopt", "create"]
