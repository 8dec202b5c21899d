"""The Windows backend's undo records: the registry `iphelper`, `dns` and `wfp` add their records to,
beside the code that makes the change (as in `wgdesk.platforms.linux.records`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from wgdesk.undo import Registry

if TYPE_CHECKING:
    from wgdesk.platforms.windows.dns import DnsSettings
    from wgdesk.platforms.windows.iphelper import IpHelper


class UndoContext(Protocol):
    """What an undo needs of the backend: the IP Helper API and the DNS settings."""

    @property
    def ip(self) -> IpHelper: ...

    @property
    def dns_settings(self) -> DnsSettings: ...


REGISTRY: Registry[UndoContext] = Registry("win32")

RECORD_MODULES = ("wgdesk.platforms.windows.iphelper", "wgdesk.platforms.windows.dns")
"""The modules that register records: imported before a journal line is read."""
