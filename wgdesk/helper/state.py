"""A tunnel as the helper holds it (`Tunnel`), its state and every change of it, in one place.

The names are the protocol's (a client sees ``"up"``, ``"blocked"`` …: `TunnelState` is a `StrEnum`,
so it is its name on the wire and in the journal header). A tunnel is born `STARTING` (a bring-up),
`BLOCKED` (recovered from a crashed helper's journal: only its kill switch is left) or `DOWN` (the
report of a bring-up that failed before it existed). `TRANSITIONS` is every move the helper makes;
`move` refuses any other, so a new code path that would, say, report a stopped tunnel as up fails
loudly in the tests instead of misleading a user.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from wgdesk.config import Config
    from wgdesk.helper.conflicts import Footprint
    from wgdesk.helper.engine_process import EngineProcess
    from wgdesk.helper.journal import Journal
    from wgdesk.helper.planning import Route
    from wgdesk.helper.resolver import EndpointName


class TunnelState(StrEnum):
    STARTING = "starting"
    """Bring-up steps are running (under the manager's lock)."""
    UP = "up"
    """Every step done; the engine runs."""
    ROLLING_BACK = "rolling-back"
    """A bring-up step failed; what was done is being undone (no PostDown hooks: it never was up)."""
    STOPPING = "stopping"
    """``down``: PreDown hooks, then the journal undone."""
    DOWN = "down"
    """Gone (reported once, then forgotten)."""
    FAILED = "failed"
    """The engine exited while up; its kill switch (if any) still blocks."""
    BLOCKED = "blocked"
    """Only the kill switch is left (after a crash of the helper or of the engine)."""


TRANSITIONS: dict[TunnelState, frozenset[TunnelState]] = {
    TunnelState.STARTING: frozenset({TunnelState.UP, TunnelState.ROLLING_BACK}),
    TunnelState.ROLLING_BACK: frozenset({TunnelState.DOWN}),
    TunnelState.UP: frozenset({TunnelState.STOPPING, TunnelState.FAILED}),
    TunnelState.FAILED: frozenset({TunnelState.STOPPING, TunnelState.BLOCKED}),
    TunnelState.BLOCKED: frozenset({TunnelState.STOPPING}),
    TunnelState.STOPPING: frozenset({TunnelState.DOWN}),
    TunnelState.DOWN: frozenset(),
}
"""From each state, the states the helper may move a tunnel to."""

BORN = frozenset({TunnelState.STARTING, TunnelState.BLOCKED, TunnelState.DOWN})
"""The states a tunnel record may be created in."""

REPLACEABLE = frozenset({TunnelState.BLOCKED, TunnelState.FAILED})
"""A tunnel in these states may be brought up again without ``down`` first."""


class IllegalTransition(RuntimeError):
    """A move `TRANSITIONS` does not allow: a bug in the helper, reported as an internal error."""


def move(current: TunnelState, to: TunnelState) -> TunnelState:
    """``to``, when a tunnel in state ``current`` may move there; `IllegalTransition` otherwise."""
    if to not in TRANSITIONS[current]:
        raise IllegalTransition(f"a tunnel cannot go from {current} to {to}")
    return to


@dataclass
class Tunnel:
    name: str
    """The tunnel's name (the config's): its identity — journal, log, status, events, owner."""
    ifname: str
    """The interface's name in the kernel, as the backend's `create` returned it (``utunN`` on
    macOS; on Linux the tunnel's name): addresses, routes, firewall, DNS, hooks' ``%i`` and the
    engine's UAPI socket use it."""
    state: TunnelState
    """Changed only through `move` (`wgdesk.helper.state.TRANSITIONS`)."""
    journal: Journal
    full_tunnel: bool = False
    kill_switch: bool = False
    fwmark: int = 0
    listen_port: int = 0
    routes: list[Route] = field(default_factory=list)
    dns_file: bool = False
    engine: EngineProcess | None = None
    message: str | None = None
    since: float = field(default_factory=time.time)
    warnings: list[str] = field(default_factory=list)
    config: Config | None = field(default=None, repr=False)
    """The parsed config the tunnel runs (secrets included; memory only, never journalled)."""
    names: dict[bytes, EndpointName] = field(default_factory=dict)
    """Peers whose endpoint is a host name, for the `Reresolver` (replaced as a whole by `update`)."""
    mtu: int | None = None
    """The interface MTU set at bring-up or lowered by `probe_mtu`."""
    bypass: bool = False
    """Excluded apps bypass this full tunnel (its `firewall.bypass_script` table is in place)."""
    include_mark: int = 0
    """Included apps go only through this tunnel: the mark (and routing table) of its
    `firewall.include_script` rules; 0 when it does not serve them."""
    owner: int = 0
    """The uid that brought it up (root: 0); only it or root may change it (`Caller`)."""
    footprint: Footprint | None = field(default=None, repr=False)
    """What it takes of this machine's routing (`conflicts`): kept while it is `failed` (its owner
    brings it back); None once only its kill switch is left (`blocked`: then only its mark counts)."""
    allowed_count: int = 0

    def __post_init__(self) -> None:
        if self.state not in BORN:
            raise IllegalTransition(f"a tunnel cannot start out {self.state}")

    def move(self, to: TunnelState) -> None:
        """Change the state, refusing a move `TRANSITIONS` does not allow."""
        self.state = move(self.state, to)
