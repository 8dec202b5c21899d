"""Split tunnelling: apps that go around a full tunnel (*excluded*) or only through a tunnel
(*included*), as the helper decides it; the OS backend (`wgdesk.platforms.interface.SplitTunnel`)
does the kernel part.

Why its own controller: which tunnel serves included apps, and whether the include guard must stay,
depends on all tunnels at once and on who owns them (a member's included apps are never sent through
another user's tunnel, and stay blocked — the guard — while none of their own serves them). Those
decisions live here, beside the two bring-up steps that make them (`bypass`, `include`) and the
verbs that move a process into a group.
"""

from __future__ import annotations

import dataclasses
import threading
from ipaddress import ip_network
from typing import TYPE_CHECKING, Any

from wgdesk.helper import mark_settings
from wgdesk.helper.errors import TunnelError
from wgdesk.helper.records import BypassOn, IncludeOn, RoutesAdded
from wgdesk.platforms import PlatformError
from wgdesk.platforms.interface import Bypass, Include, SplitError

if TYPE_CHECKING:
    from wgdesk.helper.lockdown import LockdownController
    from wgdesk.helper.logbook import LogBook
    from wgdesk.helper.planning import Plan
    from wgdesk.helper.settings import Settings
    from wgdesk.helper.state import Tunnel
    from wgdesk.helper.validation import Validation
    from wgdesk.platforms.interface import Connection, Platform


class SplitTunnels:
    """Excluded and included apps of this helper's tunnels, and the include guard."""

    def __init__(
        self,
        settings: Settings,
        platform: Platform,
        tunnels: dict[str, Tunnel],
        lock: threading.RLock,
        validation: Validation,
        lockdown: LockdownController,
        log: LogBook,
    ) -> None:
        self.settings = settings
        self.platform = platform
        self.split = platform.split
        """The groups of processes that bypass a full tunnel (``exclude``) or go only through a
        tunnel (``include``)."""
        self.tunnels = tunnels
        """The manager's table of tunnels (the same dict; changed and read under ``lock``)."""
        self.lock = lock
        """The manager's lock: include marks, and so the guard, change under it."""
        self.validation = validation
        self.lockdown = lockdown
        self.log = log
        self.include_guard = False
        """The include guard (`SplitTunnel.guard_on`) is in place."""

    # --- bring-up steps --------------------------------------------------------------------------

    def bypass(self, plan: Plan, tunnel: Tunnel) -> None:
        """Let processes of the bypass cgroup around this full tunnel (when allowed and possible)."""
        refusal = self.split.refusal("exclude")
        if refusal is not None:
            if self.settings.allow_split_tunnel:
                self.log.info(plan.name, refusal[1])
            return
        tunnel.journal.add(BypassOn(plan.ifname))
        self.split.bypass_on(
            Bypass(plan.ifname, plan.fwmark, tuple(plan.addresses), tuple(plan.dns_servers)),
            tunnel.journal.recorder(),
        )
        tunnel.bypass = True
        self.log.info(plan.name, f"apps in cgroup {self.split.group('exclude')} bypass this full tunnel")
        self.lockdown.refilter()

    def include(self, plan: Plan, tunnel: Tunnel) -> None:
        """Send the include cgroup's traffic only through this tunnel (full tunnel off, peers allow a
        default route): first such tunnel up serves; another one up meanwhile does not. Only the
        owner's processes are marked: another user's included apps stay blocked (the include
        guard), never sent through someone else's tunnel."""
        if not self._may_serve(plan):
            return
        j = tunnel.journal
        mark = self.validation.free_fwmark(plan.name, also_taken=[plan.fwmark])
        defaults = [ip_network("0.0.0.0/0" if f == 4 else "::/0") for f in sorted(plan.include_families)]
        j.add(RoutesAdded(plan.ifname, str(mark), tuple(str(d) for d in defaults)))
        self.platform.routing.add_routes(plan.ifname, defaults, str(mark))
        families = frozenset(plan.include_families)
        self.platform.routing.mark_routing_on(mark, families, j.recorder())
        mark_settings.set_for(self.platform.routing, plan.include_families, j)
        j.add(IncludeOn(plan.ifname, mark))
        tunnel.include_mark = mark
        if tunnel.footprint is not None:
            tunnel.footprint = dataclasses.replace(
                tunnel.footprint,
                include_families=frozenset(plan.include_families),
                tables=tunnel.footprint.tables | {str(mark)},
                marks=tunnel.footprint.marks | {mark},
            )
        self.sync_include_guard(wanted=True)
        self.split.include_on(Include(plan.ifname, mark, families, plan.owner or None), j.recorder())
        self.log.info(plan.name, f"apps in cgroup {self.split.group('include')} go only through this tunnel")
        self.lockdown.refilter()

    def _may_serve(self, plan: Plan) -> bool:
        """Whether the tunnel of ``plan`` is the one to serve included apps (logged when not)."""
        serving = [t.name for t in self.tunnels.values() if t.include_mark and t.name != plan.name]
        if serving:
            self.log.info(
                plan.name, f"included apps keep going through tunnel {serving[0]} (it was up first)"
            )
            return False
        full = [t.name for t in self.tunnels.values() if t.full_tunnel and t.owner != plan.owner]
        if full:
            self.log.info(
                plan.name, f"included apps are not sent through this tunnel: {full[0]} is a full tunnel"
            )
            return False
        refusal = self.split.refusal("include")
        if refusal is not None:
            if self.settings.allow_split_tunnel:
                self.log.info(plan.name, refusal[1])
            return False
        return True

    # --- verbs ---------------------------------------------------------------------------------

    def split_include(self, conn: Connection, uid: int) -> dict[str, Any]:
        """Move the process at the other end of ``conn`` into the include cgroup (`split`), once the
        include guard is in place: with no tunnel of its user serving, it gets nothing out."""
        refusal = self.split.refusal("include")
        if refusal is not None:
            raise TunnelError(*refusal)
        with self.lock:
            try:
                self.sync_include_guard(wanted=True)
            except PlatformError as e:
                raise TunnelError("failed", f"cannot put the include guard in place: {e}") from e
        try:
            moved = self.split.move_peer(conn, uid, "include")
        except SplitError as e:
            raise TunnelError(e.code, e.message) from e
        return {**moved.as_dict(), **self._include_state(uid)}

    def split_exclude(self, conn: Connection, uid: int) -> dict[str, Any]:
        """Move the process at the other end of ``conn`` into the bypass cgroup (`split`)."""
        try:
            moved = self.split.move_peer(conn, uid, "exclude")
        except SplitError as e:
            raise TunnelError(e.code, e.message) from e
        return {**moved.as_dict(), **self._split_state()}

    def split_list(self, uid: int | None) -> dict[str, Any]:
        """The excluded processes (of ``uid`` only, unless None) and whether a full tunnel is bypassed."""
        refusal = self.split.refusal("exclude")
        processes = self.split.members("exclude", uid) + self.split.members("include", uid)
        return {
            "available": refusal is None,
            "reason": refusal[1] if refusal else None,
            "processes": [p.as_dict() for p in processes],
            **self._split_state(),
            "include": self._include_state(uid),
        }

    def _include_state(self, uid: int | None = None) -> dict[str, Any]:
        """Whether a tunnel serves included apps (of ``uid``: root's tunnel serves everyone's, a
        member's only the member's own). Read without the lock."""
        serving = [
            t.name
            for t in list(self.tunnels.values())
            if t.include_mark and t.state == "up" and (uid is None or t.owner in (0, uid))
        ]
        return {
            "cgroup": self.split.group("include"),
            "active": bool(serving),
            "tunnel": serving[0] if serving else None,
        }

    def _split_state(self) -> dict[str, Any]:
        bypassed = [t.name for t in list(self.tunnels.values()) if t.bypass and t.state == "up"]
        return {
            "cgroup": self.split.group("exclude"),
            "active": bool(bypassed),
            "tunnel": bypassed[0] if bypassed else None,
        }

    # --- the include guard ---------------------------------------------------------------------

    def sync_include_guard(self, wanted: bool = False) -> None:
        """The include guard (`SplitTunnel.guard_on`) is in place while the include cgroup
        has processes or a tunnel serves it, or when ``wanted`` (one is about to join it); it goes
        once neither is the case. Call with the lock held."""
        if any(t.include_mark for t in self.tunnels.values()):
            wanted = True
        if wanted:
            if not self.include_guard:
                self.split.guard_on()
                self.include_guard = True
                group = self.split.group("include")
                self.log.info(None, f"included apps (cgroup {group}) get out only through a tunnel")
        elif self.include_guard and not self.split.members("include"):
            self.split.guard_off()
            self.include_guard = False

    def recover_include_guard(self) -> None:
        """A guard left by the previous helper stays while included apps still run (they would get
        out around the tunnel otherwise), and goes once none is left."""
        if not self.split.guard_present():
            return
        self.include_guard = True
        try:
            self.split.locate("include")  # find (or mount) the hierarchy to see who is still in it
        except SplitError as e:
            self.log.warning(None, f"included apps: {e.message}; keeping their guard")
            return
        left = self.split.members("include")
        self.sync_include_guard()
        if left:
            self.log.info(
                None,
                f"{len(left)} included app(s) still running: they stay blocked until a tunnel serves them",
            )

    def close(self) -> None:
        """At helper stop: the guard stays while included apps run (they must not get out)."""
        try:
            self.sync_include_guard()
        except PlatformError as e:
            self.log.error(None, f"could not remove the include guard: {e}")
        self.split.close()
