"""The macOS backend's undo records: the registry each concept module adds its records to, beside
the code that makes the change (`ifconfig`'s name record, `routes`' routes, `dns`'s dynamic-store
key, `pf`'s anchors and reference tokens). Kinds start with ``darwin_``: a journal never mixes them
up with another backend's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from wgdesk.platforms.darwin.runner import Runner
from wgdesk.platforms.interface import PlatformOptions
from wgdesk.undo import Registry


class UndoContext(Protocol):
    """What an undo needs of the backend: the command runner and where runtime records live."""

    @property
    def runner(self) -> Runner: ...

    @property
    def run_dir(self) -> Path: ...

    @property
    def options(self) -> PlatformOptions: ...

    def endpoint_routes_removed(self, endpoints: tuple[str, ...]) -> None:
        """These endpoint host routes are no longer wgdesk's (stop moving them)."""
        ...

    def dns_restored(self, key: str) -> None:
        """Dynamic-store key ``key`` is no longer wgdesk's (stop re-asserting it)."""
        ...


REGISTRY: Registry[UndoContext] = Registry("darwin")

RECORD_MODULES = (
    "wgdesk.platforms.darwin.ifconfig",
    "wgdesk.platforms.darwin.routes",
    "wgdesk.platforms.darwin.dns",
    "wgdesk.platforms.darwin.pf",
)
"""The modules that register records: imported before a journal line is read."""
