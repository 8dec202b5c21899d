"""What a tunnel may take on this machine, checked before anything changes.

Every member of the control group is a possible adversary of every other (and of root's tunnels):
a config is refused here, under the manager's lock and before the first change, when it would take
what another tunnel or the system already uses (routes, addresses, DNS, routing tables, marks —
`conflicts`), or more than the administrator allows one user (``max_tunnels_per_user``,
``max_routes_per_user``). The tunnels it compares with are the manager's table, read as they are
(the caller holds the lock).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from wgdesk.helper import conflicts
from wgdesk.helper.conflicts import Footprint
from wgdesk.helper.errors import TunnelError
from wgdesk.helper.planning import FIRST_FWMARK, Plan

if TYPE_CHECKING:
    from wgdesk.config import Config
    from wgdesk.helper.settings import Settings
    from wgdesk.helper.state import Tunnel
    from wgdesk.platforms.interface import Platform


def parse(name: str, text: str) -> Config:
    """``text`` as the config of tunnel ``name``, refused (``invalid``) when it does not parse or
    has no private key or no peer."""
    from wgdesk.config import ConfigError
    from wgdesk.config import parse as parse_config

    try:
        cfg = parse_config(text, f"{name}.conf")
    except ConfigError as e:
        raise TunnelError("invalid", str(e)) from e
    if not cfg.interface.private_key:
        raise TunnelError("invalid", f"{name}.conf: [Interface] has no PrivateKey")
    if not cfg.peers:
        raise TunnelError("invalid", f"{name}.conf: no [Peer] section")
    return cfg


def footprint(plan: Plan) -> Footprint:
    """What the tunnel ``plan`` brings up takes on the machine."""
    tables = {str(plan.fwmark)} if plan.full_tunnel else set()
    if conflicts.table_id(plan.table) not in ("auto", "off", "254"):
        tables.add(conflicts.table_id(plan.table))
    return Footprint(
        plan.name,
        plan.owner,
        routes=tuple(r.dst for r in plan.routes),
        addresses=conflicts.address_networks(plan.addresses),
        dns=conflicts.host_networks(plan.dns_servers),
        endpoints=conflicts.host_networks(plan.endpoint_ips),
        tables=frozenset(tables),
        marks=frozenset({plan.fwmark}),
        full=plan.full_tunnel,
        sets_dns=bool(plan.dns_servers or plan.dns_search),
    )


class Validation:
    """The checks that compare a new or changed tunnel with the others of this helper and with the
    system (call with the manager's lock held)."""

    def __init__(self, settings: Settings, platform: Platform, tunnels: dict[str, Tunnel]) -> None:
        self.settings = settings
        self.platform = platform
        self.tunnels = tunnels
        """The manager's table of tunnels (the same dict, not a copy)."""

    def check_limits(self, owner: int, name: str, allowed: int) -> None:
        """Refuse (``limit``) a member's tunnel beyond `max_tunnels_per_user`, or AllowedIPs beyond
        `max_routes_per_user` counted over all their tunnels (``name`` itself not counted twice)."""
        if owner == 0:
            return
        mine = [t for t in self.tunnels.values() if t.owner == owner and t.name != name]
        most = self.settings.max_tunnels_per_user
        if len(mine) >= most:
            raise TunnelError(
                "limit",
                f"you have {len(mine)} tunnels up, the most one user may have "
                f"(max_tunnels_per_user = {most} in /etc/wgdesk/helper.toml); take one down first",
            )
        total = allowed + sum(t.allowed_count for t in mine)
        most = self.settings.max_routes_per_user
        if total > most:
            raise TunnelError(
                "limit",
                f"{name} has {allowed} AllowedIPs entries; with your other tunnels that makes {total}, "
                f"more than one user may route (max_routes_per_user = {most} in /etc/wgdesk/helper.toml)",
            )

    def check_tables(self, owner: int, table: str, full_fwmark: int | None) -> None:
        """A member's ``Table =`` (or the table an explicit ``FwMark`` of a full tunnel names) must be
        one nothing on this machine uses yet (`conflicts.system_table_refusal`)."""
        own = [t.footprint for t in self.tunnels.values() if t.owner == owner and t.footprint]
        for wanted in (table, *([str(full_fwmark)] if full_fwmark else [])):
            why = conflicts.system_table_refusal(wanted, self.table_in_use, own)
            if why is not None:
                raise TunnelError("conflict", why)

    def table_in_use(self, number: str) -> bool:
        routing = self.platform.routing
        return routing.table_in_use(int(number)) or routing.mark_in_use(int(number))

    def check_dns(self, name: str, dns_servers: Sequence[str]) -> None:
        """With a DNS backend that only one tunnel can use at a time (resolv.conf), a second tunnel
        that sets DNS is refused."""
        if not dns_servers or not self.platform.dns.exclusive:
            return
        for other in self.tunnels.values():
            if other.dns_file and other.name != name:
                raise TunnelError(
                    "conflict",
                    f"tunnel {other.name} already sets DNS through "
                    f"{self.settings.resolv_conf}; only one tunnel can",
                )

    def footprints(self) -> list[Footprint]:
        """What the tunnels of this helper take now: those up (and failed, whose owner will bring
        them back), and for blocked ones after a crash only their mark."""
        out = []
        for t in self.tunnels.values():
            if t.footprint is not None:
                out.append(t.footprint)
            elif t.fwmark:
                out.append(Footprint(t.name, t.owner, marks=frozenset({t.fwmark})))
        return out

    def check_conflicts(self, footprint: Footprint) -> None:
        try:
            conflicts.check(footprint, self.footprints())
        except conflicts.Conflict as e:
            raise TunnelError("conflict", str(e)) from e

    def free_fwmark(self, name: str, also_taken: Sequence[int] = ()) -> int:
        """A mark (and routing table of that number) no tunnel and nothing on the system uses."""
        previous = self.tunnels.get(name)
        if previous is not None and previous.fwmark and not also_taken:
            # a blocked/failed tunnel being brought up again keeps its mark, which its kill switch allows
            return previous.fwmark
        taken = {t.fwmark for t in self.tunnels.values()} | {t.include_mark for t in self.tunnels.values()}
        taken |= {int(n) for f in self.footprints() for n in f.numbers if n.isdigit()}
        taken |= set(also_taken)
        mark = FIRST_FWMARK
        while mark in taken or self.table_in_use(str(mark)):
            mark += 1
        return mark
