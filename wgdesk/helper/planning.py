"""What a bring-up will do, decided before anything is touched: the `Plan` and its routes.

`TunnelManager.up` parses, resolves and validates a config into a `Plan` (interface, addresses, MTU,
routes by table, fwmark, DNS, hooks); the bring-up steps then only carry it out. A route goes into
the main table, a ``Table =`` of the config, or (full tunnel) the tunnel's own table numbered after its
fwmark.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Network, IPv6Network
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from wgdesk.config import Config
    from wgdesk.helper.resolver import EndpointName

Network = IPv4Network | IPv6Network
FIRST_FWMARK = 51820


@dataclass(frozen=True)
class Route:
    dst: Network
    table: str


@dataclass
class Plan:
    """Everything `up` decided before touching the system."""

    name: str
    ifname: str
    private_key: bytes
    peers: list[dict[str, Any]]
    addresses: list[str]
    mtu: int
    routes: list[Route]
    full_tunnel: bool
    default_families: set[int]
    kill_switch: bool
    fwmark: int
    listen_port: int
    dns_servers: list[str]
    dns_search: list[str]
    hooks: dict[str, tuple[str, ...]]
    warnings: list[str] = field(default_factory=list)
    config: Config | None = field(default=None, repr=False)
    names: dict[bytes, EndpointName] = field(default_factory=dict)
    """Peers (by public key) whose endpoint is a host name, with the address `up` resolved."""
    include_families: set[int] = field(default_factory=set)
    """Full tunnel off, peers allow these default routes: the tunnel may serve included apps."""
    owner: int = 0
    """The uid whose `up` this is."""
    table: str = "auto"
    """The config's ``Table`` (lower case; ``auto`` when unset)."""
    endpoint_ips: list[str] = field(default_factory=list)
    allowed_count: int = 0
    """AllowedIPs entries of all peers (after removing repeats): what `max_routes_per_user` counts."""


def by_table(routes: Sequence[Route]) -> dict[str, list[Network]]:
    """Destinations of ``routes`` by table, in order (one netlink batch each)."""
    out: dict[str, list[Network]] = {}
    for r in routes:
        out.setdefault(r.table, []).append(r.dst)
    return out


def routes_for(nets: Sequence[Network], table: str, full: bool, fwmark: int) -> list[Route]:
    """The routes wg-quick would add for ``nets`` (``table`` lower-cased, ``auto`` when unset)."""
    routes: list[Route] = []
    if table == "off":
        return routes
    for n in nets:
        if n.prefixlen == 0 and table == "auto":
            if full:
                routes.append(Route(n, str(fwmark)))
            continue
        routes.append(Route(n, "main" if table == "auto" else table))
    return routes
