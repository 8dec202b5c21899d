"""The Windows backend's undo records: the registry `iphelper` and `dns` add their records to, beside
the code that makes the change (as in `wgdesk.platforms.linux.records`), and what an undo may ask of
the backend (narrow protocols, so this module imports neither)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Protocol

from wgdesk.platforms.interface import Network
from wgdesk.undo import Registry


class IpUndo(Protocol):
    def delete_addresses(self, luid: int, addresses: Sequence[str]) -> None: ...

    def delete_routes(self, luid: int, destinations: Sequence[Network]) -> None: ...

    def restore(self, luid: int, family: int, mtu: int, metric: int, automatic_metric: bool) -> None: ...


class DnsUndo(Protocol):
    def clear(self, guid: uuid.UUID) -> None: ...


class UndoContext(Protocol):
    """What an undo needs of the backend: the IP Helper API and the DNS settings."""

    @property
    def ip(self) -> IpUndo: ...

    @property
    def dns_settings(self) -> DnsUndo: ...


REGISTRY: Registry[UndoContext] = Registry("win32")
