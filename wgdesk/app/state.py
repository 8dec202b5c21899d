"""The state of a tunnel as the app shows it, derived from the helper's status report.

"Connected" is only claimed when the protocol proves it: a handshake within Reject-After-Time (180 s,
whitepaper §6.1). A tunnel that is up but whose last handshake is older is *idle* (WireGuard is silent without
traffic); one that never completed a handshake is still *connecting*.
"""

from __future__ import annotations

import enum

from wgdesk.snapshots import TunnelSnapshot

REJECT_AFTER_TIME = 180.0

_ERROR_STATES = frozenset({"error", "failed", "blocked"})  # blocked: kill switch kept after a crash
_BUSY_STATES = frozenset({"starting", "connecting", "stopping"})


class IconState(enum.Enum):
    """What the tray icon shows (the worst-first summary of all tunnels); drawn by :mod:`wgdesk.app.icons`."""

    DISCONNECTED = "disconnected"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    ERROR = "error"


class Health(enum.Enum):
    """The health of one tunnel."""

    DOWN = "down"
    STARTING = "starting"  # asked to come up, no report from the helper yet
    WAITING = "waiting"  # up, no handshake yet
    HEALTHY = "healthy"  # a handshake within Reject-After-Time
    IDLE = "idle"  # up, the last handshake is older (no traffic)
    ERROR = "error"


def latest_handshake(status: TunnelSnapshot) -> float | None:
    """The most recent ``latest_handshake`` (Unix seconds) of any peer, or None."""
    known = [p.latest_handshake for p in status.peers if p.latest_handshake]
    return max(known) if known else None


def health(status: TunnelSnapshot | None, now: float, pending: bool = False) -> Health:
    """The health of a tunnel from its helper status (``None`` when the helper does not list it)."""
    if status is None:
        return Health.STARTING if pending else Health.DOWN
    state = status.state.lower()
    if state in _ERROR_STATES:
        return Health.ERROR
    if state in _BUSY_STATES:
        return Health.STARTING
    handshake = latest_handshake(status)
    if handshake is None:
        return Health.WAITING
    return Health.HEALTHY if now - handshake < REJECT_AFTER_TIME else Health.IDLE


_ICONS = {
    Health.DOWN: IconState.DISCONNECTED,
    Health.STARTING: IconState.CONNECTING,
    Health.WAITING: IconState.CONNECTING,
    Health.HEALTHY: IconState.CONNECTED,
    Health.IDLE: IconState.CONNECTED,
    Health.ERROR: IconState.ERROR,
}
_ICON_PRIORITY = (IconState.ERROR, IconState.CONNECTING, IconState.CONNECTED)


def tunnel_icon(h: Health) -> IconState:
    """The icon of one tunnel (in the tunnel list)."""
    return _ICONS[h]


def icon_state(healths: list[Health], helper_problem: bool) -> IconState:
    """One icon for all tunnels: error beats connecting beats connected beats disconnected."""
    if helper_problem:
        return IconState.ERROR
    icons = {_ICONS[h] for h in healths}
    return next((icon for icon in _ICON_PRIORITY if icon in icons), IconState.DISCONNECTED)


def is_active(h: Health) -> bool:
    """Whether the tunnel counts as up (the menu entry is checked, the button says "Deactivate")."""
    return h in (Health.STARTING, Health.WAITING, Health.HEALTHY, Health.IDLE, Health.ERROR)
