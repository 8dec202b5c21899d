"""The Linux backend's undo records: the registry each concept module adds its records to, beside the
code that makes the change (`nft.NftTable`, `iproute.RuleAdded`, `links.LinkCreated`, `dns`'s).

Kinds and fields are those the helper's journal has used since wgdesk 0.1 (``link``, ``rule``,
``nft_table``, ``dns_*``), so a helper upgraded while tunnels are up undoes what the old one recorded.
"""

from __future__ import annotations

from typing import Protocol

from wgdesk.platforms.interface import PlatformOptions
from wgdesk.undo import Registry


class UndoContext(Protocol):
    """What an undo needs of the backend: its options (e.g. where the power-loss record of a
    rewritten resolv.conf is)."""

    @property
    def options(self) -> PlatformOptions: ...


REGISTRY: Registry[UndoContext] = Registry("linux")

RECORD_MODULES = (
    "wgdesk.platforms.linux.links",
    "wgdesk.platforms.linux.iproute",
    "wgdesk.platforms.linux.nft",
    "wgdesk.platforms.linux.dns",
)
"""The modules that register records: imported before a journal line is read."""
