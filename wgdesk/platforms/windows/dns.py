"""A tunnel's DNS servers and search domains on Windows, on the tunnel's own adapter.

``SetInterfaceDnsSettings`` (Windows 10 2004 and later) where it exists, otherwise the registry values
the older API reads (``Tcpip``/``Tcpip6\\Parameters\\Interfaces\\{GUID}``: ``NameServer``,
``SearchList``), as wireguard-windows does. The settings belong to the adapter's GUID, which is fixed
per tunnel (`wgdesk.platforms.windows.wintun.tunnel_guid`) and therefore outlives the adapter: so the
change is journalled (`DnsSet`) and undone by clearing both families' values.

Windows resolves through every interface's servers at once and prefers the lowest interface metric;
a full tunnel's adapter has metric 0 (`wgdesk.platforms.windows.iphelper.IpHelper.configure`), and the
kill switch lets DNS out only to the tunnel's servers (`wgdesk.platforms.windows.wfp_plan`), so no
query leaks to the physical network's resolver.
"""

from __future__ import annotations

import ctypes
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from ipaddress import ip_address
from typing import Any, Protocol

from wgdesk.platforms.errors import PlatformError
from wgdesk.platforms.interface import Recorder
from wgdesk.platforms.windows.records import REGISTRY, UndoContext
from wgdesk.platforms.windows.structures import DNS_INTERFACE_SETTINGS, GUID, wide
from wgdesk.platforms.windows.wintun import guid_struct
from wgdesk.undo import UndoRecord

DNS_INTERFACE_SETTINGS_VERSION1 = 1
DNS_SETTING_IPV6 = 0x0001
DNS_SETTING_NAMESERVER = 0x0002
DNS_SETTING_SEARCHLIST = 0x0004

INTERFACES_KEY = r"SYSTEM\CurrentControlSet\Services\{stack}\Parameters\Interfaces\{{{guid}}}"
"""Where the older API keeps an interface's DNS (``stack``: ``Tcpip`` or ``Tcpip6``)."""


class Registry(Protocol):
    """The registry writes the fallback needs (`WinRegistry`; a fake in the tests)."""

    def set_string(self, key: str, name: str, value: str) -> None: ...


class WinRegistry:
    """`Registry` through ``winreg`` under ``HKEY_LOCAL_MACHINE``."""

    def set_string(self, key: str, name: str, value: str) -> None:
        import winreg

        with winreg.CreateKeyEx(winreg.HKEY_LOCAL_MACHINE, key, 0, winreg.KEY_SET_VALUE) as handle:
            winreg.SetValueEx(handle, name, 0, winreg.REG_SZ, value)


@dataclass(frozen=True)
class DnsSet(UndoRecord):
    """DNS servers/search domains set on the adapter with GUID ``guid``."""

    kind = "win_dns"
    guid: str


class DnsSettings:
    """Sets and clears an adapter's DNS. ``iphlpapi``: the DLL (or a fake); the API is used when it
    has ``SetInterfaceDnsSettings``, else ``registry``."""

    def __init__(self, iphlpapi: Any, registry: Registry) -> None:
        self.iphlpapi = iphlpapi
        self.registry = registry

    @property
    def uses_api(self) -> bool:
        return hasattr(self.iphlpapi, "SetInterfaceDnsSettings")

    def set(self, guid: uuid.UUID, servers: Sequence[str], search: Sequence[str], record: Recorder) -> None:
        """Set ``servers`` (each family's to its stack) and ``search`` on the adapter ``guid``."""
        parsed = [ip_address(server) for server in servers]  # ValueError before any change
        record(DnsSet(str(guid)))
        for version in (4, 6):
            chosen = [str(a) for a in parsed if a.version == version]
            self._write(guid, version, chosen, search if version == 4 else ())

    def clear(self, guid: uuid.UUID) -> None:
        for version in (4, 6):
            self._write(guid, version, (), ())

    def _write(self, guid: uuid.UUID, version: int, servers: Sequence[str], search: Sequence[str]) -> None:
        if self.uses_api:
            self._write_api(guid, version, servers, search)
        else:
            key = INTERFACES_KEY.format(stack="Tcpip" if version == 4 else "Tcpip6", guid=str(guid).upper())
            self.registry.set_string(key, "NameServer", ",".join(servers))
            if version == 4:
                self.registry.set_string(key, "SearchList", ",".join(search))

    def _write_api(
        self, guid: uuid.UUID, version: int, servers: Sequence[str], search: Sequence[str]
    ) -> None:
        settings = DNS_INTERFACE_SETTINGS()
        settings.Version = DNS_INTERFACE_SETTINGS_VERSION1
        settings.Flags = DNS_SETTING_NAMESERVER | (
            DNS_SETTING_IPV6 if version == 6 else DNS_SETTING_SEARCHLIST
        )
        names = wide(",".join(servers))
        domains = wide(",".join(search))
        settings.NameServer = ctypes.addressof(names)
        if version == 4:
            settings.SearchList = ctypes.addressof(domains)
        interface: GUID = guid_struct(guid)
        status = self.iphlpapi.SetInterfaceDnsSettings(interface, ctypes.byref(settings))
        if status != 0:
            raise PlatformError(f"setting DNS of the tunnel adapter failed (error {status})")


@REGISTRY.undoes(DnsSet)
def _(record: DnsSet, context: UndoContext) -> None:
    context.dns_settings.clear(uuid.UUID(record.guid))
