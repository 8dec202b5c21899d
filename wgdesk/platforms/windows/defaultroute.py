"""Keeping the engine's UDP out of its own tunnel: the socket bound to the best default route that is
not a tunnel's, and re-bound when that changes.

Windows has no fwmark. A full tunnel's default route (metric 0 on the tunnel adapter) would also carry
the engine's own encrypted packets — into the tunnel again, a loop. wireguard-windows avoids it the
way done here: find the default route of lowest effective metric (route metric + interface metric)
whose interface is connected and not one of our tunnels (`default_interface`), and pin the socket to
that interface with ``IP_UNICAST_IF``/``IPV6_UNICAST_IF`` (`bind_socket`). Which interface that is
changes (Wi-Fi to Ethernet, a VPN of someone else's), so `DefaultRouteMonitor` asks Windows for route
change notifications (``NotifyRouteChange2``) and calls back when the answer differs. Note the byte
orders: the IPv4 option takes the index in network order, the IPv6 one in host order.

"Not one of our tunnels" means not *any* tunnel adapter, not only the engine's own: with two full
tunnels up, each has a metric-0 default route, and excluding only its own would pin one engine's
UDP into the other tunnel (and that one's back, a loop through both). An engine does not know the
other engines' adapters, so every Wintun adapter is excluded (`is_tunnel`): Wintun's INF gives each
one interface type ``IF_TYPE_PROP_VIRTUAL`` (53, ``*IfType`` in wintun.inf), and the type is the top
16 bits of the interface's LUID (``NET_LUID_LH.Info.IfType``), so no further call is needed. This
also passes over another program's Wintun tunnel (the official WireGuard client): our UDP then
leaves by the physical link rather than through it.
"""

from __future__ import annotations

import ctypes
import logging
import socket
import struct
import threading
from collections.abc import Callable, Collection
from typing import Any

from wgdesk.platforms.errors import PlatformError
from wgdesk.platforms.interface import BoundSockets
from wgdesk.platforms.windows.iphelper import NO_ERROR, IpHelper
from wgdesk.platforms.windows.structures import (
    AF_INET,
    AF_INET6,
    AF_UNSPEC,
    MIB_IPFORWARD_ROW2,
    MIB_IPFORWARD_TABLE2,
)

IPPROTO_IP = 0
IPPROTO_IPV6 = 41
IP_UNICAST_IF = 31
IPV6_UNICAST_IF = 31
HEADER_CONSTANTS = {
    "IP_UNICAST_IF": IP_UNICAST_IF,
    "IPV6_UNICAST_IF": IPV6_UNICAST_IF,
    "IPPROTO_IPV6": IPPROTO_IPV6,
}

log = logging.getLogger(__name__)

_FUNCTYPE = getattr(ctypes, "WINFUNCTYPE", ctypes.CFUNCTYPE)
ROUTE_CHANGE_CALLBACK = _FUNCTYPE(None, ctypes.c_void_p, ctypes.POINTER(MIB_IPFORWARD_ROW2), ctypes.c_uint32)
"""``PIPFORWARD_CHANGE_CALLBACK``."""


IF_TYPE_PROP_VIRTUAL = 53
"""The interface type of every Wintun adapter (wintun.inf)."""
HEADER_CONSTANTS["IF_TYPE_PROP_VIRTUAL"] = IF_TYPE_PROP_VIRTUAL


def if_type(luid: int) -> int:
    """The interface type of the interface with ``luid`` (``NET_LUID_LH``: bits 48–63)."""
    return luid >> 48


def is_tunnel(luid: int, exclude: Collection[int]) -> bool:
    """Whether the default route of ``luid`` would take the engine's UDP into a tunnel: one of
    ``exclude`` (its own) or any Wintun adapter (wgdesk's other tunnels among them)."""
    return luid in exclude or if_type(luid) == IF_TYPE_PROP_VIRTUAL


def default_interface(ip: IpHelper, family: int, exclude: Collection[int]) -> int | None:
    """The index of the interface of the best default route of ``family`` that is not a tunnel
    (`is_tunnel`: ``exclude`` or any Wintun adapter) and is connected; None when there is none
    (offline)."""
    best = default_route(ip, family, exclude)
    return None if best is None else best[0]


def default_route(ip: IpHelper, family: int, exclude: Collection[int]) -> tuple[int, int] | None:
    """(index, MTU) of `default_interface`'s interface."""
    table = ctypes.c_void_p()
    status = ip.dll.GetIpForwardTable2(family, ctypes.byref(table))
    if status != NO_ERROR:
        raise PlatformError(f"reading the routing table failed (error {status})")
    best: tuple[int, int, int] | None = None
    try:
        address = table.value or 0
        count = MIB_IPFORWARD_TABLE2.from_address(address).NumEntries
        rows = (MIB_IPFORWARD_ROW2 * count).from_address(address + MIB_IPFORWARD_TABLE2.Table.offset)
        for row in rows:
            luid = row.InterfaceLuid.Value
            if row.DestinationPrefix.PrefixLength != 0 or is_tunnel(luid, exclude):
                continue
            try:
                interface = ip.interface_row(luid, family)
            except PlatformError:
                continue  # gone since the table was read
            if not interface.Connected:
                continue
            metric = row.Metric + interface.Metric
            if best is None or metric < best[0]:
                best = (metric, row.InterfaceIndex, interface.NlMtu)
    finally:
        ip.dll.FreeMibTable(table)
    return None if best is None else (best[1], best[2])


def bind_socket(sock: socket.socket, family: int, index: int) -> None:
    """Send ``sock``'s packets out of interface ``index`` only (0: no pinning)."""
    if family == AF_INET:
        sock.setsockopt(IPPROTO_IP, IP_UNICAST_IF, struct.pack("!I", index))
    else:
        sock.setsockopt(IPPROTO_IPV6, IPV6_UNICAST_IF, struct.pack("<I", index))


class DefaultRouteMonitor:
    """Calls ``on_change(family, index)`` (from a Windows thread-pool thread) whenever the best
    non-tunnel default interface of a family changes; `current` holds the last answers."""

    def __init__(
        self, ip: IpHelper, exclude: Collection[int], on_change: Callable[[int, int | None], None]
    ) -> None:
        self.ip = ip
        self.exclude = frozenset(exclude)
        self.on_change = on_change
        self.lock = threading.Lock()
        self.current: dict[int, int | None] = {
            f: default_interface(ip, f, self.exclude) for f in (AF_INET, AF_INET6)
        }
        self._callback: Any = ROUTE_CHANGE_CALLBACK(self._changed)  # kept: Windows calls it until cancelled
        handle = ctypes.c_void_p()
        status = ip.dll.NotifyRouteChange2(AF_UNSPEC, self._callback, None, 0, ctypes.byref(handle))
        if status != NO_ERROR:
            raise PlatformError(f"cannot watch the routing table (error {status})")
        self.handle = handle.value

    def _changed(self, context: Any, row: Any, kind: int) -> None:
        """Called by Windows: an exception here would vanish in ctypes, so it is logged."""
        try:
            self._recheck()
        except Exception:
            log.exception("re-checking the default route failed")

    def _recheck(self) -> None:
        with self.lock:
            for family in (AF_INET, AF_INET6):
                try:
                    index = default_interface(self.ip, family, self.exclude)
                except PlatformError:
                    continue
                if index != self.current[family]:
                    self.current[family] = index
                    self.on_change(family, index)

    def close(self) -> None:
        if self.handle:
            # as a pointer: ctypes would pass a bare int as a 32-bit C int (a 64-bit handle overflows)
            self.ip.dll.CancelMibChangeNotify2(ctypes.c_void_p(self.handle))
            self.handle = None


class UdpPinning:
    """`wgdesk.platforms.interface.UdpGuard` on Windows: keeps an engine's UDP sockets on the best
    non-tunnel default interface — pinned when the engine opens them (`bound`, also after a new
    ``listen_port``), re-pinned by `DefaultRouteMonitor` when that interface changes. The callback
    runs on a Windows thread-pool thread; ``setsockopt`` on a socket the loop is using is safe, so the
    loop is not involved. With no such interface (offline) a socket is unpinned (index 0) and pinned
    again when one appears."""

    def __init__(self, ip: IpHelper, tunnels: Collection[int]) -> None:
        self.sockets: BoundSockets | None = None
        self.monitor = DefaultRouteMonitor(ip, tunnels, self._pin)

    def bound(self, sockets: BoundSockets) -> None:
        """Pin ``sockets`` now (the engine's new ones) and from now on."""
        with self.monitor.lock:  # not between the monitor's answer and its callback
            self.sockets = sockets
            for family, index in self.monitor.current.items():
                self._pin(family, index)

    def _pin(self, family: int, index: int | None) -> None:
        if self.sockets is None:
            return
        sock = self.sockets.sock4 if family == AF_INET else self.sockets.sock6
        if sock is not None:
            bind_socket(sock, family, index or 0)

    def close(self) -> None:
        self.monitor.close()
