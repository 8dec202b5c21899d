"""Addresses, routes and the MTU of a tunnel interface through the IP Helper API (``iphlpapi.dll``).

Interfaces are named by their LUID (what Wintun gives, `wgdesk.platforms.windows.wintun.Adapter.luid`),
as wireguard-windows' ``winipcfg`` does: an index can be reused, a LUID not while the adapter lives.
Every change is journalled *before* it is made (a `Recorder` call with one of the records below), so
a crashed helper's successor removes exactly what was added. Adding what exists and deleting what
is gone are not errors (a retried bring-up, an undo after the adapter went).

The DLL is any object with the functions used (``IpHelper.load`` takes the real one; the tests a fake
that records the calls and the bytes of each row).
"""

from __future__ import annotations

import ctypes
from collections.abc import Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, ip_interface, ip_network
from typing import Any

from wgdesk.platforms.errors import PlatformError
from wgdesk.platforms.interface import Network, Recorder
from wgdesk.platforms.windows import dlls
from wgdesk.platforms.windows.records import REGISTRY, UndoContext
from wgdesk.platforms.windows.structures import (
    AF_INET,
    AF_INET6,
    MIB_IPFORWARD_ROW2,
    MIB_IPINTERFACE_ROW,
    MIB_UNICASTIPADDRESS_ROW,
    NET_LUID,
    SOCKADDR_INET,
)
from wgdesk.undo import UndoRecord

NO_ERROR = 0
ERROR_FILE_NOT_FOUND = 2
ERROR_NOT_FOUND = 1168
ERROR_OBJECT_ALREADY_EXISTS = 5010
GONE = frozenset({ERROR_FILE_NOT_FOUND, ERROR_NOT_FOUND})

IP_DAD_STATE_PREFERRED = 4
"""``IpDadStatePreferred``: the address is usable at once (no duplicate detection on a tunnel)."""


def set_sockaddr(target: SOCKADDR_INET, address: IPv4Address | IPv6Address) -> None:
    """Fill ``target`` with ``address`` (port 0)."""
    if address.version == 4:
        target.Ipv4.sin_family = AF_INET
        ctypes.memmove(ctypes.addressof(target.Ipv4.sin_addr), address.packed, 4)
    else:
        target.Ipv6.sin6_family = AF_INET6
        ctypes.memmove(ctypes.addressof(target.Ipv6.sin6_addr), address.packed, 16)


def family_of(version: int) -> int:
    return AF_INET if version == 4 else AF_INET6


@dataclass(frozen=True)
class AddressAdded(UndoRecord):
    """An address (``IP/PREFIX``) on the interface ``luid``."""

    kind = "win_address"
    luid: int
    address: str


@dataclass(frozen=True)
class RouteAdded(UndoRecord):
    """A route to ``destination`` through the interface ``luid`` (on-link: no gateway)."""

    kind = "win_route"
    luid: int
    destination: str


@dataclass(frozen=True)
class InterfaceSet(UndoRecord):
    """The interface ``luid``'s MTU and metric for ``family`` as they were before."""

    kind = "win_interface"
    luid: int
    family: int
    mtu: int
    metric: int
    automatic_metric: bool


class IpHelper:
    """The calls of ``iphlpapi.dll`` wgdesk makes."""

    def __init__(self, dll: Any) -> None:
        self.dll = dll

    @classmethod
    def load(cls) -> IpHelper:
        return cls(dlls.load("iphlpapi"))

    def _check(self, what: str, status: int, tolerated: frozenset[int] = frozenset()) -> None:
        if status != NO_ERROR and status not in tolerated:
            raise PlatformError(f"{what} failed (error {status})")

    # -- addresses ------------------------------------------------------------------------------------

    def _address_row(self, luid: int, address: str) -> MIB_UNICASTIPADDRESS_ROW:
        interface = ip_interface(address)
        row = MIB_UNICASTIPADDRESS_ROW()
        self.dll.InitializeUnicastIpAddressEntry(ctypes.byref(row))
        set_sockaddr(row.Address, interface.ip)
        row.InterfaceLuid.Value = luid
        row.OnLinkPrefixLength = interface.network.prefixlen
        row.DadState = IP_DAD_STATE_PREFERRED
        return row

    def add_addresses(self, luid: int, addresses: Sequence[str], record: Recorder) -> None:
        for address in addresses:
            row = self._address_row(luid, address)
            record(AddressAdded(luid, address))
            status = self.dll.CreateUnicastIpAddressEntry(ctypes.byref(row))
            self._check(f"adding address {address}", status, frozenset({ERROR_OBJECT_ALREADY_EXISTS}))

    def delete_addresses(self, luid: int, addresses: Sequence[str]) -> None:
        for address in addresses:
            row = self._address_row(luid, address)
            self._check(
                f"deleting address {address}", self.dll.DeleteUnicastIpAddressEntry(ctypes.byref(row)), GONE
            )

    # -- routes -----------------------------------------------------------------------------------

    def _route_row(self, luid: int, destination: Network) -> MIB_IPFORWARD_ROW2:
        row = MIB_IPFORWARD_ROW2()
        self.dll.InitializeIpForwardEntry(ctypes.byref(row))
        row.InterfaceLuid.Value = luid
        set_sockaddr(row.DestinationPrefix.Prefix, destination.network_address)
        row.DestinationPrefix.PrefixLength = destination.prefixlen
        row.NextHop.si_family = family_of(destination.version)  # on-link: the unspecified address
        row.Metric = 0
        return row

    def add_routes(self, luid: int, destinations: Sequence[Network], record: Recorder) -> None:
        """Add on-link routes; raises naming the first one refused (those before it stay)."""
        for destination in destinations:
            row = self._route_row(luid, destination)
            record(RouteAdded(luid, str(destination)))
            status = self.dll.CreateIpForwardEntry2(ctypes.byref(row))
            self._check(f"adding route {destination}", status, frozenset({ERROR_OBJECT_ALREADY_EXISTS}))

    def delete_routes(self, luid: int, destinations: Sequence[Network]) -> None:
        for destination in destinations:
            row = self._route_row(luid, destination)
            self._check(
                f"deleting route {destination}", self.dll.DeleteIpForwardEntry2(ctypes.byref(row)), GONE
            )

    # -- the interface --------------------------------------------------------------------------------

    def interface_row(self, luid: int, family: int) -> MIB_IPINTERFACE_ROW:
        row = MIB_IPINTERFACE_ROW()
        self.dll.InitializeIpInterfaceEntry(ctypes.byref(row))
        row.Family = family
        row.InterfaceLuid.Value = luid
        self._check("reading the interface", self.dll.GetIpInterfaceEntry(ctypes.byref(row)))
        return row

    def configure(
        self, luid: int, family: int, record: Recorder, *, mtu: int | None = None, metric: int | None = None
    ) -> None:
        """Set the MTU and/or a fixed metric (a full tunnel's interface gets 0, so its default
        route wins over the physical one's) of ``family`` on the interface."""
        row = self.interface_row(luid, family)
        record(InterfaceSet(luid, family, row.NlMtu, row.Metric, bool(row.UseAutomaticMetric)))
        self.write_row(row, mtu=mtu, metric=metric)

    def write_row(
        self, row: MIB_IPINTERFACE_ROW, *, mtu: int | None, metric: int | None, automatic: bool = False
    ) -> None:
        if mtu is not None:
            row.NlMtu = mtu
        if metric is not None:
            row.Metric = metric
            row.UseAutomaticMetric = int(automatic)
        if row.Family == AF_INET:
            row.SitePrefixLength = 0  # SetIpInterfaceEntry refuses IPv4 rows with the one Get returns
        self._check("setting the interface", self.dll.SetIpInterfaceEntry(ctypes.byref(row)))

    def restore(self, luid: int, family: int, mtu: int, metric: int, automatic_metric: bool) -> None:
        """Put back what `configure` recorded (nothing when the interface is gone, and its
        settings with it)."""
        try:
            row = self.interface_row(luid, family)
        except PlatformError:
            return
        self.write_row(row, mtu=mtu, metric=metric, automatic=automatic_metric)

    def mtu(self, luid: int) -> int:
        return int(self.interface_row(luid, AF_INET).NlMtu)

    def set_mtu(self, luid: int, mtu: int) -> None:
        """The MTU of both families (the engine's own call on its adapter: not journalled, the
        adapter goes with the engine)."""
        for family in (AF_INET, AF_INET6):
            self.write_row(self.interface_row(luid, family), mtu=mtu, metric=None)

    def index(self, luid: int) -> int:
        value = NET_LUID(luid)
        index = ctypes.c_uint32()
        self._check(
            "ConvertInterfaceLuidToIndex",
            self.dll.ConvertInterfaceLuidToIndex(ctypes.byref(value), ctypes.byref(index)),
        )
        return int(index.value)


@REGISTRY.undoes(AddressAdded)
def _(record: AddressAdded, context: UndoContext) -> None:
    context.ip.delete_addresses(record.luid, [record.address])


@REGISTRY.undoes(RouteAdded)
def _(record: RouteAdded, context: UndoContext) -> None:
    context.ip.delete_routes(record.luid, [ip_network(record.destination)])


@REGISTRY.undoes(InterfaceSet)
def _(record: InterfaceSet, context: UndoContext) -> None:
    context.ip.restore(record.luid, record.family, record.mtu, record.metric, record.automatic_metric)
