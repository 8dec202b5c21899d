"""The engine's own I/O on Linux and macOS: the compiled data path reads the TUN descriptor itself,
the UAPI listener is the UNIX socket of `wgdesk.platforms.unix.uapi`, and the engine's UDP needs no
guard (a mark on Linux, a bound interface handed over by the helper on macOS keep it out of the
tunnel)."""

from __future__ import annotations

from pathlib import Path

from wgdesk.platforms.interface import BoundSockets, Tun, UapiListener
from wgdesk.platforms.unix.uapi import listen, socket_path


class NoUdpGuard:
    """Nothing to keep: the OS routes the engine's packets around its tunnel."""

    def bound(self, sockets: BoundSockets) -> None:
        return None

    def close(self) -> None:
        return None


class UnixEngineIO:
    """`wgdesk.platforms.interface.EngineIO` where the tunnel device is a file descriptor."""

    compiled_reads_device = True

    def listen_uapi(self, ifname: str) -> tuple[UapiListener, Path | None]:
        return listen(ifname), socket_path(ifname)

    def guard_udp(self, tun: Tun) -> NoUdpGuard:
        return NoUdpGuard()
