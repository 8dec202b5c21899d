"""The tunnel interface, its routes and its DNS as the helper asks for them (by interface name), on
Windows: `wgdesk.platforms.interface.TunnelDevices`, `Routing` and `Dns` over `iphelper` and `dns`.

The helper names interfaces; Windows' API wants LUIDs, so each call looks the name up
(``ConvertInterfaceAliasToLuid``: the adapter's alias is the tunnel name Wintun was given). What has
no Windows meaning stays refused (`Unsupported`, from the ``Missing*`` base): routing tables and packet
marks (Windows routes by metric, and the engine's socket is pinned to the physical interface instead,
`wgdesk.platforms.windows.defaultroute`), and creating the device in the helper (the engine creates
its Wintun adapter itself, `wgdesk.platforms.windows.tun`).

A full tunnel on Windows is: the peers' default routes on the tunnel interface (added by the helper as
routes), the tunnel interface's metric fixed at 0 in each carried family so those routes win
(`WindowsRouting.full_tunnel_on`, journalled), and the engine's socket pinned to the physical interface.
"""

from __future__ import annotations

import ctypes
import uuid
from collections.abc import Sequence
from typing import Protocol

from wgdesk.platforms.errors import PlatformError, Unsupported
from wgdesk.platforms.interface import FullTunnel, MachineSetting, Network, Recorder
from wgdesk.platforms.unsupported import MissingDns, MissingRouting, MissingTunnelDevices
from wgdesk.platforms.windows import defaultroute
from wgdesk.platforms.windows.dns import DnsSettings
from wgdesk.platforms.windows.iphelper import NO_ERROR, IpHelper
from wgdesk.platforms.windows.structures import AF_INET, AF_INET6, GUID, NET_LUID, wide
from wgdesk.platforms.windows.wintun import tunnel_guid
from wgdesk.undo import UndoRecord


class Source(Protocol):
    """Where the DLL wrappers come from (the backend, which loads them on first use)."""

    @property
    def ip(self) -> IpHelper: ...

    @property
    def dns_settings(self) -> DnsSettings: ...


def luid_of(ip: IpHelper, name: str) -> int:
    """The LUID of the interface called ``name``; `OSError` when there is none (the interface's
    contract for an interface that is gone)."""
    luid = NET_LUID()
    alias = wide(name)  # kept alive across the call
    status = ip.dll.ConvertInterfaceAliasToLuid(alias, ctypes.byref(luid))
    if status != NO_ERROR:
        raise FileNotFoundError(f"no interface {name} (error {status})")
    return int(luid.Value)


def guid_of(ip: IpHelper, luid: int) -> uuid.UUID:
    guid = GUID()
    status = ip.dll.ConvertInterfaceLuidToGuid(ctypes.byref(NET_LUID(luid)), ctypes.byref(guid))
    if status != NO_ERROR:
        raise PlatformError(f"no GUID for interface {luid:#x} (error {status})")
    return uuid.UUID(bytes_le=ctypes.string_at(ctypes.addressof(guid), 16))


def _journalled_by_the_helper(record: UndoRecord) -> None:
    """The helper journals address and route changes itself (`wgdesk.undo` records of its own)."""


def win_family(version: int) -> int:
    """Windows' ``ADDRESS_FAMILY`` for an IP version (4 or 6: what `FullTunnel.families` holds)."""
    if version not in (4, 6):
        raise ValueError(f"IP version {version}")
    return AF_INET if version == 4 else AF_INET6


class WindowsTunnelDevices(MissingTunnelDevices):
    made_by_engine = True
    """The engine creates its Wintun adapter (`wgdesk.platforms.windows.tun`), names it after the
    tunnel and gives it the tunnel's fixed GUID; the adapter goes when the engine closes it or ends."""

    def __init__(self, source: Source) -> None:
        super().__init__("win32")
        self.source = source

    def find(self, name: str) -> str:
        """The engine's adapter for tunnel ``name``: its alias is the tunnel's name, and every later
        call looks its LUID up by that (`FileNotFoundError` until the engine has created it). An
        adapter of that name without the tunnel's fixed GUID is someone else's (another VPN's, or
        one renamed by hand): `PlatformError`, so nothing of the tunnel is put on it."""
        ip = self.source.ip
        guid = guid_of(ip, luid_of(ip, name))
        if guid != tunnel_guid(name):
            raise PlatformError(
                f"the adapter named {name} is not this tunnel's (GUID {guid}): rename or remove it"
            )
        return name

    def exists(self, name: str) -> bool:
        try:
            luid_of(self.source.ip, name)
        except FileNotFoundError:
            return False
        return True

    def add_addresses(self, name: str, addresses: Sequence[str]) -> None:
        ip = self.source.ip
        ip.add_addresses(luid_of(ip, name), addresses, _journalled_by_the_helper)

    def delete_addresses(self, name: str, addresses: Sequence[str]) -> None:
        ip = self.source.ip
        ip.delete_addresses(luid_of(ip, name), addresses)

    def configure(self, name: str, *, mtu: int | None = None, up: bool | None = None) -> None:
        """The MTU of both families; ``up`` is the adapter's own business (up while its session is)."""
        if mtu is not None:
            ip = self.source.ip
            ip.set_mtu(luid_of(ip, name), mtu)

    def mtu(self, name: str) -> int:
        ip = self.source.ip
        return ip.mtu(luid_of(ip, name))


class WindowsRouting(MissingRouting):
    def __init__(self, source: Source) -> None:
        super().__init__("win32")
        self.source = source

    def _main(self, table: str, destinations: Sequence[Network]) -> None:
        """Windows has one routing table. The full tunnel's default routes, which the helper plans
        into the tunnel's own numbered table (Linux's policy routing), go into it: there the tunnel
        interface's metric 0 (`full_tunnel_on`) makes them win. Any other table is refused."""
        if table == "main" or (table.isdigit() and all(d.prefixlen == 0 for d in destinations)):
            return
        raise Unsupported(f"routing table {table!r}: Windows has one routing table")

    def add_routes(self, ifname: str, destinations: Sequence[Network], table: str) -> None:
        self._main(table, destinations)
        ip = self.source.ip
        ip.add_routes(luid_of(ip, ifname), destinations, _journalled_by_the_helper)

    def delete_routes(self, ifname: str, destinations: Sequence[Network], table: str) -> None:
        self._main(table, destinations)
        ip = self.source.ip
        try:
            luid = luid_of(ip, ifname)
        except FileNotFoundError:
            return  # the adapter, and its routes, are gone
        ip.delete_routes(luid, destinations)

    def table_in_use(self, table: int) -> bool:
        return False  # no numbered tables on Windows: none can clash

    def mark_in_use(self, mark: int) -> bool:
        return False

    def route_mtu(self, destination: str) -> int | None:
        """None: the engine's UDP leaves by the best default route whatever the destination (pinned
        there, `defaultroute`), so `default_route_mtu` is the MTU that counts."""
        return None

    def default_route_mtu(self) -> int | None:
        """The MTU of the interface the engine's UDP is pinned to (IPv4's, else IPv6's); None offline."""
        ip = self.source.ip
        for family in (AF_INET, AF_INET6):
            best = defaultroute.default_route(ip, family, ())
            if best is not None:
                return best[1]
        return None

    def mark_settings(self, families: frozenset[int]) -> tuple[MachineSetting, ...]:
        """None: nothing is marked on Windows (the engine's socket is pinned instead)."""
        return ()

    def full_tunnel_on(self, tunnel: FullTunnel, record: Recorder) -> None:
        ip = self.source.ip
        luid = luid_of(ip, tunnel.ifname)
        for family in sorted(tunnel.families):
            ip.configure(luid, win_family(family), record, metric=0)


class WindowsDns(MissingDns):
    def __init__(self, source: Source) -> None:
        super().__init__("win32")
        self.source = source

    @property
    def backend(self) -> str:
        return "SetInterfaceDnsSettings" if self.source.dns_settings.uses_api else "registry"

    def set(self, ifname: str, servers: Sequence[str], search: Sequence[str], record: Recorder) -> None:
        ip = self.source.ip
        self.source.dns_settings.set(guid_of(ip, luid_of(ip, ifname)), servers, search, record)
