"""OS specifics behind one interface (`wgdesk.platforms.interface.Platform`).

This is the only module that branches on ``sys.platform``: `create` builds the running OS's backend
(`linux`, `darwin`, `windows`), `backend` is the process's shared one. The helper creates its own with
its administrator's options; the engine and the app use `backend`. The functions below are what the
GUI and the CLI need (the OS name, the config directory, the network we are on, start at login); they
load only the part of a backend they use, never the helper's networking code.
"""

from __future__ import annotations

import functools
import os
import socket
import sys
import time
from collections.abc import Callable
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address
from pathlib import Path

from wgdesk.platforms.errors import PlatformError, Unsupported
from wgdesk.platforms.interface import Notes, Platform, PlatformOptions
from wgdesk.platforms.network_identity import NetworkIdentity, normal_mac


def create(options: PlatformOptions | None = None, notes: Notes | None = None) -> Platform:
    """A backend for the running OS, configured with ``options`` (the helper's settings) and reporting
    what it does on its own to ``notes``. Raises `Unsupported` on an OS wgdesk does not know."""
    if sys.platform.startswith("linux"):
        from wgdesk.platforms.linux import LinuxPlatform

        return LinuxPlatform(options, notes)
    if sys.platform == "darwin":
        from wgdesk.platforms.darwin import DarwinPlatform

        return DarwinPlatform(options, notes)
    if sys.platform == "win32":
        from wgdesk.platforms.windows import WindowsPlatform

        return WindowsPlatform(options, notes)
    raise Unsupported(f"wgdesk does not support {sys.platform}")


@functools.cache
def backend() -> Platform:
    """The running OS's backend with default options (the engine's and the app's)."""
    return create()


def system() -> str:
    """The running OS as `linux`, `darwin` or `win32` (the names `wgdesk.config.lint` takes)."""
    return "linux" if sys.platform.startswith("linux") else sys.platform


def local_networks() -> list[IPv4Network | IPv6Network]:
    """The networks of this machine's own interfaces (not tunnels), for the linter's `overlap-lan`;
    empty where the OS cannot tell (the warning is advice, never a reason to fail)."""
    try:
        return backend().network.local_networks()
    except (PlatformError, ValueError):
        return []


def route_to(address: str) -> dict[str, str] | None:
    """How the kernel would route a packet to ``address`` right now: the outgoing interface
    (``dev``) and, when the OS says, ``gateway``, ``source``, ``table`` (absent: the main table) and
    ``type`` (absent: unicast; ``local`` for this machine's own addresses). None when it has no
    route or the OS cannot tell (nothing here is a reason to fail)."""
    try:
        return backend().network.route_to(address)
    except (PlatformError, ValueError):
        return None


def current_network() -> NetworkIdentity | None:
    """The network carrying the default route of the main table now (wgdesk's own tunnels and their
    policy tables are not looked at); None when there is none, or it cannot be told yet (the gateway's
    link-layer address is not known until the machine has talked to it). Runs programs (`ip`, `nmcli`
    or `iw`): call it on a worker thread in the GUI."""
    try:
        return backend().network.current_network()
    except (PlatformError, ValueError, OSError):
        return None


def start_at_login() -> bool:
    """Whether the app starts when the user logs in."""
    return backend().autostart.enabled()


def set_start_at_login(enabled: bool, command: str) -> None:
    """Create (``command`` starts the app; it gets ``--minimized``) or remove the start-at-login entry."""
    backend().autostart.set(enabled, command)


def autostart_location() -> Path:
    """Where the start-at-login entry lives (Windows: a pseudo-path naming the registry value)."""
    return backend().autostart.location()


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
    "Platform",
    "PlatformError",
    "PlatformOptions",
    "Unsupported",
    "addresses_of",
    "autostart_location",
    "backend",
    "create",
    "current_network",
    "executable_name",
    "local_networks",
    "normal_mac",
    "route_to",
    "set_start_at_login",
    "start_at_login",
    "suspend_aware_clock",
    "system",
    "user_config_dir",
]
