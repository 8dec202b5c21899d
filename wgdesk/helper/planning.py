"""What a bring-up will do, decided before anything is touched: the `Plan` and its routes.

`TunnelManager.up` parses, resolves and validates a config into a `Plan` (interface, addresses, MTU,
routes by table, fwmark, DNS, hooks); the bring-up steps then only carry it out. A route goes into
the main table, a ``Table =`` of the config, or (full tunnel) the tunnel's own table numbered after its
fwmark.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Network, IPv6Network
from typing import TYPE_CHECKING, Any

from wgdesk.helper.errors import TunnelError
from wgdesk.helper.resolver import EndpointName, is_name

if TYPE_CHECKING:
    from wgdesk.config import Config
    from wgdesk.platforms.interface import Routing

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
    """The tunnel's name: its identity (journal, log, status)."""
    ifname: str
    """The interface's name: the tunnel's until the device exists, then the one the kernel gave it
    (`wgdesk.platforms.interface.TunnelDevice.name`), used for everything the kernel is told and
    for the engine's UAPI socket."""
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


def full_tunnel_choice(
    defaults: set[int], table: str, config_table: str | None, wanted: bool | None
) -> tuple[bool, list[str]]:
    """Whether the tunnel is a full tunnel (peers allow a default route of ``defaults``, ``Table =
    auto``, and the caller did not say no), with a warning when it said no; a full tunnel asked for
    (``wanted``) that cannot be is ``invalid``."""
    if wanted is True:
        if not defaults:
            raise TunnelError("invalid", "full tunnel needs a peer with AllowedIPs 0.0.0.0/0 and/or ::/0")
        if table != "auto":
            raise TunnelError(
                "invalid", f"full tunnel needs Table = auto (this config has Table = {config_table})"
            )
    warnings = []
    if defaults and wanted is False:
        warnings.append("full tunnel is off: 0.0.0.0/0 and ::/0 are accepted from the peer but not routed")
    return bool(defaults) and table == "auto" and wanted is not False, warnings


def peer_entries(
    cfg: Config, resolved: dict[tuple[str, int], str]
) -> tuple[list[dict[str, Any]], list[str], dict[bytes, EndpointName]]:
    """The peers of ``cfg`` as the engine is configured with them (endpoints by the addresses
    ``resolved``), the endpoint addresses in order without repeats, and the peers whose endpoint is
    a host name (for re-resolving)."""
    from wgdesk.config import key_bytes

    peers = []
    endpoint_ips: list[str] = []
    names: dict[bytes, EndpointName] = {}
    for p in cfg.peers:
        peer: dict[str, Any] = {
            "public_key": p.public_key,
            "preshared_key": p.preshared_key,
            "allowed_ips": list(p.allowed_ips),
            "keepalive": p.persistent_keepalive,
            "endpoint": None,
        }
        if p.endpoint is not None:
            ip = resolved[(p.endpoint.host, p.endpoint.port)]
            peer["endpoint"] = (ip, p.endpoint.port)
            endpoint_ips.append(ip)
            # as _peer_states merges a repeated [Peer]: the last Endpoint given wins
            key = key_bytes(p.public_key)
            names.pop(key, None)
            if is_name(p.endpoint.host):
                names[key] = EndpointName(p.endpoint.host, p.endpoint.port, ip, time.time(), time.monotonic())
        peers.append(peer)
    return peers, list(dict.fromkeys(endpoint_ips)), names


def allowed_hooks(cfg: Config, allow_scripts: bool, warnings: list[str]) -> dict[str, tuple[str, ...]]:
    """The config's hooks, none unless the administrator allows scripts (then a warning says so);
    also warns of ``SaveConfig``, which wgdesk ignores."""
    hooks = dict(cfg.interface.hooks)
    if hooks and not allow_scripts:
        warnings.append(
            f"hooks not run ({', '.join(hooks)}): allow_scripts is off in /etc/wgdesk/helper.toml"
        )
        hooks = {}
    if cfg.interface.save_config:
        warnings.append("SaveConfig is ignored by wgdesk")
    return hooks


def auto_mtu(routing: Routing, endpoint_ips: Sequence[str]) -> int:
    """wg-quick's MTU: the smallest of the routes to the endpoints (else the default route's, else
    1500) less 80 bytes of WireGuard over IPv6, at least 1280."""
    mtus = [m for m in (routing.route_mtu(ip) for ip in endpoint_ips) if m]
    if not mtus:
        d = routing.default_route_mtu()
        mtus = [d] if d else [1500]
    return max(1280, int(min(mtus)) - 80)
