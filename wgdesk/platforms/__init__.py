"""OS specifics behind one interface.

This is the only module that branches on ``sys.platform``; everything else imports
``wgdesk.platforms.current`` (the module for the running OS) or the names re-exported here.
``current`` is loaded on first use, so the GUI and the CLI can ask for `system()` or
`user_config_dir()` without importing the privileged networking code.
"""

from __future__ import annotations

import functools
import os
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address
from pathlib import Path
from types import ModuleType


class PlatformError(Exception):
    """An operating-system operation failed; ``str()`` names the command and the OS's answer."""


class Unsupported(PlatformError):
    """The running operating system has no implementation of this operation yet."""


@dataclass(frozen=True)
class NetworkIdentity:
    """The network this machine is on: the one that carries the main routing table's default route.

    ``kind`` is ``wifi``, ``wired`` or ``other``; ``key`` is what stays the same each time the machine
    joins that network (``wifi:SSID``, ``gateway:MAC`` — the default gateway's link-layer address —, or
    ``link:NAME`` for a point-to-point link without a gateway); ``label`` is for people (the SSID, the
    connection's name); ``interface`` is the OS's name of the link.
    """

    kind: str
    key: str
    label: str
    interface: str = ""

    @classmethod
    def identify(
        cls,
        kind: str,
        interface: str,
        gateway: str | None = None,
        mac: str | None = None,
        ssid: str | None = None,
        name: str | None = None,
    ) -> NetworkIdentity | None:
        """The identity every OS module derives from what it found on the default route's link: a Wi-Fi
        network by its SSID; else by the gateway's link-layer address ``mac`` (None while that is not
        known); a link without a gateway by the link's name. ``name`` (the OS's name for the connection)
        becomes the label when there is one."""
        if ssid:
            return cls("wifi", f"wifi:{ssid}", ssid, interface)
        if not gateway:
            return cls(kind, f"link:{interface}", name or interface, interface)
        address = normal_mac(mac or "")
        if address is None:
            return None
        return cls(kind, f"gateway:{address}", name or f"{gateway} ({address}) on {interface}", interface)


def normal_mac(text: str) -> str | None:
    """A link-layer address as lower-case, colon-separated, two-digit octets (``0:1b:…`` as macOS's
    ``arp`` prints it and ``00-1B-…`` as Windows does become ``00:1b:…``); None when it is none, or
    all zeros (an entry still being resolved)."""
    octets = text.strip().lower().replace("-", ":").split(":")
    if len(octets) < 6 or any(not 1 <= len(o) <= 2 for o in octets):
        return None
    try:
        values = [int(o, 16) for o in octets]
    except ValueError:
        return None
    if not any(values):
        return None
    return ":".join(f"{v:02x}" for v in values)


def _select() -> ModuleType:
    if sys.platform.startswith("linux"):
        from wgdesk.platforms import linux

        return linux
    if sys.platform == "darwin":
        from wgdesk.platforms import darwin

        return darwin
    if sys.platform == "win32":
        from wgdesk.platforms import windows

        return windows
    raise Unsupported(f"wgdesk does not support {sys.platform}")


def __getattr__(name: str) -> ModuleType:
    if name == "current":
        module = _select()
        globals()["current"] = module
        return module
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def system() -> str:
    """The running OS as `linux`, `darwin` or `win32` (the names `wgdesk.config.lint` takes)."""
    return "linux" if sys.platform.startswith("linux") else sys.platform


def local_networks() -> list[IPv4Network | IPv6Network]:
    """The networks of this machine's own interfaces (not tunnels), for the linter's `overlap-lan`;
    empty where the OS cannot tell (the warning is advice, never a reason to fail)."""
    try:
        networks: list[IPv4Network | IPv6Network] = _select().local_networks()
    except (PlatformError, ValueError):
        return []
    return networks


def route_to(address: str) -> dict[str, str] | None:
    """How the kernel would route a packet to ``address`` right now: the outgoing interface
    (``dev``) and, when the OS says, ``gateway``, ``source``, ``table`` (absent: the main table) and
    ``type`` (absent: unicast; ``local`` for this machine's own addresses). None when it has no
    route or the OS cannot tell (nothing here is a reason to fail)."""
    try:
        found: dict[str, str] | None = _select().route_to(address)
    except (PlatformError, ValueError):
        return None
    return found


def current_network() -> NetworkIdentity | None:
    """The network carrying the default route of the main table now (wgdesk's own tunnels and their
    policy tables are not looked at); None when there is none, or it cannot be told yet (the gateway's
    link-layer address is not known until the machine has talked to it). Runs programs (`ip`, `nmcli`
    or `iw`): call it on a worker thread in the GUI."""
    try:
        found: NetworkIdentity | None = _select().current_network()
    except (PlatformError, ValueError, OSError):
        return None
    return found


def addresses_of(target: str) -> list[IPv4Address | IPv6Address]:
    """`target` itself when it is an IP address, else every address its name resolves to, in the
    resolver's order (blocking: call it on a worker thread in the GUI)."""
    try:
        return [ip_address(target)]
    except ValueError:
        pass
    found: list[IPv4Address | IPv6Address] = []
    for *_, sockaddr in socket.getaddrinfo(target, None, proto=socket.IPPROTO_TCP):
        addr = ip_address(str(sockaddr[0]).split("%")[0])
        if addr not in found:
            found.append(addr)
    return found


def suspend_aware_clock() -> Callable[[], float]:
    """A monotonic clock (seconds) that keeps counting while the machine sleeps.

    The engine feeds it to the protocol core, as the kernel module uses boot time: after a laptop's
    suspend longer than Reject-After-Time (180 s) its session counts as expired and the first packet
    starts a handshake, instead of going out on keys the peer has long dropped (and timers that fell
    due during the sleep fire on wake-up). Linux: `CLOCK_BOOTTIME`; macOS: `CLOCK_MONOTONIC`, which
    counts sleep there; Windows: `time.monotonic` (QueryPerformanceCounter, not paused by sleep).
    """
    if sys.platform.startswith("linux"):
        return functools.partial(time.clock_gettime, time.CLOCK_BOOTTIME)
    if sys.platform == "darwin":
        return functools.partial(time.clock_gettime, time.CLOCK_MONOTONIC)
    return time.monotonic


def executable_name(name: str) -> str:
    """The file name of executable `name` on the running OS (`name.exe` on Windows)."""
    return f"{name}.exe" if sys.platform == "win32" else name


def user_config_dir() -> Path:
    """The user's wgdesk directory (DESIGN §2 Files): `$XDG_CONFIG_HOME/wgdesk` (default
    `~/.config/wgdesk`) on Linux, `~/Library/Application Support/wgdesk` on macOS, `%APPDATA%\\wgdesk` on
    Windows."""
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "wgdesk"
    if sys.platform == "win32":
        return Path(os.environ.get("APPDATA") or Path.home() / "AppData" / "Roaming") / "wgdesk"
    xdg = os.environ.get("XDG_CONFIG_HOME", "")
    return (Path(xdg) if os.path.isabs(xdg) else Path.home() / ".config") / "wgdesk"


__all__ = [
    "NetworkIdentity",
    "PlatformError",
    "Unsupported",
    "addresses_of",
    "current",
    "current_network",
    "executable_name",
    "local_networks",
    "route_to",
    "suspend_aware_clock",
    "system",
    "user_config_dir",
]
