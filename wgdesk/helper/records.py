"""The helper's own undo records: what a bring-up step changed that only the helper can reverse.

Each is a frozen `wgdesk.undo.UndoRecord` journalled *before* its change; the function that undoes it
is registered in `wgdesk.helper.tunnels` (``UNDO``) next to the step that records it. Changes an OS
backend makes (the interface, policy rules, nft tables, DNS) are the backend's records
(`wgdesk.platforms.linux.records`); the journal holds both, and the helper tries its own registry
first. Kinds and fields are those the journal has used since wgdesk 0.1, so a journal left by an
older helper is undone by a newer one (``route`` is 0.1's one-route record;
tests/helper/test_recovery.py replays such a journal).
"""

from __future__ import annotations

from dataclasses import dataclass

from wgdesk.undo import UndoRecord


@dataclass(frozen=True)
class EngineStarted(UndoRecord):
    """The engine process (its start time tells it from a later process with the same pid)."""

    kind = "process"
    pid: int
    start_time: int | None = None


@dataclass(frozen=True)
class UapiSocket(UndoRecord):
    """The engine's UAPI socket file, removed if the engine left it behind."""

    kind = "uapi_socket"
    path: str


@dataclass(frozen=True)
class AddressAdded(UndoRecord):
    kind = "addr"
    ifname: str
    address: str


@dataclass(frozen=True)
class RoutesAdded(UndoRecord):
    """One batch of routes into one table (``main``, a config's ``Table``, or the full tunnel's)."""

    kind = "routes"
    ifname: str
    table: str
    dsts: tuple[str, ...]


@dataclass(frozen=True)
class RouteAdded(UndoRecord):
    """One route, as wgdesk 0.1 journalled each (read only)."""

    kind = "route"
    ifname: str
    dst: str
    table: str


@dataclass(frozen=True)
class MtuLowered(UndoRecord):
    """The interface MTU before a probe lowered it."""

    kind = "mtu"
    ifname: str
    old: int


@dataclass(frozen=True)
class SettingChanged(UndoRecord):
    """A machine setting (a sysctl on Linux) and its value before; handed to another tunnel that
    still needs the new value instead of being restored."""

    kind = "sysctl"
    key: str
    old: str


@dataclass(frozen=True)
class BypassOn(UndoRecord):
    """Excluded apps bypass this full tunnel (the backend records its own table)."""

    kind = "bypass_on"
    ifname: str


@dataclass(frozen=True)
class IncludeOn(UndoRecord):
    """Included apps go only through this tunnel, marked ``mark``."""

    kind = "include_on"
    ifname: str
    mark: int


@dataclass(frozen=True)
class KillSwitchOn(UndoRecord):
    """This tunnel is a member of the kill switch; the entry a crashed helper's tunnel stays
    blocked by."""

    kind = "killswitch"
    ifname: str
    fwmark: int
    listen_port: int = 0


@dataclass(frozen=True)
class Hook(UndoRecord):
    """A PreDown or PostDown hook of the config, run by ``down`` (not by a rollback)."""

    kind = "hook"
    when: str
    commands: tuple[str, ...]
