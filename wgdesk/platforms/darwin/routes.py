"""Routes and the full tunnel on macOS (a `wgdesk.platforms.interface.Routing`), as wg-quick's darwin
script makes them: macOS has one routing table and no policy rules, so

* a route through the tunnel is ``route -q -n add -inet[6] NET -interface utunN``;
* a full tunnel is two halves of the address space that are more specific than the default route
  (``0.0.0.0/1`` + ``128.0.0.0/1``, ``::/1`` + ``8000::/1``) — the default route stays, so macOS
  keeps seeing the network it is on;
* each peer's endpoint gets a host route through the *original* gateway (``-gateway GW``), or a
  blackhole when there is none, so the encrypted packets never loop into the tunnel. The original
  gateway is the first ``default`` of ``netstat -nr`` that is not a utun or a ``link#N``.

When the network changes (another Wi-Fi, a cable plugged in) the gateway changes and the endpoint
routes must follow: `netwatch.NetworkWatch` reads the routing socket and says when to look again, and
`EndpointRoutes.reapply` moves the host routes to the new gateway.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Network, IPv6Network, ip_address, ip_network

from wgdesk.platforms.darwin.records import REGISTRY, UndoContext
from wgdesk.platforms.darwin.runner import NETSTAT, ROUTE, Runner
from wgdesk.platforms.errors import PlatformError, Unsupported
from wgdesk.platforms.interface import FullTunnel, MachineSetting, Network, Recorder
from wgdesk.undo import UndoRecord

FULL4 = (IPv4Network("0.0.0.0/1"), IPv4Network("128.0.0.0/1"))
FULL6 = (IPv6Network("::/1"), IPv6Network("8000::/1"))


def _family(network: Network | str) -> str:
    return "-inet6" if ":" in str(network) else "-inet"


def route_add(network: Network, ifname: str) -> list[str]:
    return [ROUTE, "-q", "-n", "add", _family(network), str(network), "-interface", ifname]


def route_delete(network: Network, ifname: str) -> list[str]:
    return [ROUTE, "-q", "-n", "delete", _family(network), str(network), "-interface", ifname]


def host_route_add(endpoint: str, gateway: str | None) -> list[str]:
    """A host route to ``endpoint`` through ``gateway``; without one a blackhole (wg-quick's answer:
    better no packet than one that loops into the tunnel)."""
    if gateway is None:
        loopback = "::1" if ":" in endpoint else "127.0.0.1"
        return [ROUTE, "-q", "-n", "add", _family(endpoint), endpoint, loopback, "-blackhole"]
    return [ROUTE, "-q", "-n", "add", _family(endpoint), endpoint, "-gateway", gateway]


def host_route_delete(endpoint: str) -> list[str]:
    return [ROUTE, "-q", "-n", "delete", _family(endpoint), endpoint]


# --- parsers ----------------------------------------------------------------------------------------


_ROUTE_GET_KEYS = frozenset({"destination", "mask", "gateway", "interface", "flags", "if address"})


def parse_route_get(text: str) -> dict[str, str]:
    """``route -n get DEST``: its ``key: value`` lines (gateway, interface, flags…) and, from the
    metrics table below them, ``mtu``. Empty when the output has no route."""
    fields: dict[str, str] = {}
    lines = text.splitlines()
    for i, line in enumerate(lines):
        key, sep, value = line.partition(":")
        if sep and key.strip() in _ROUTE_GET_KEYS:
            fields[key.strip()] = value.strip()
        elif "mtu" in line.split() and i + 1 < len(lines):
            names, values = line.split(), lines[i + 1].split()
            if len(names) == len(values):
                fields.update({n: v for n, v in zip(names, values, strict=True) if n == "mtu"})
    return fields


@dataclass(frozen=True)
class RouteEntry:
    """One line of ``netstat -nr``."""

    destination: str
    gateway: str
    flags: str
    netif: str


def parse_netstat(text: str) -> list[RouteEntry]:
    """The route lines of ``netstat -nr`` (``-f inet`` or ``-f inet6``; headers skipped)."""
    entries = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 4 or parts[0] in ("Destination", "Routing", "Internet:", "Internet6:"):
            continue
        entries.append(RouteEntry(parts[0], parts[1], parts[2], parts[3]))
    return entries


def original_gateway(entries: Iterable[RouteEntry]) -> str | None:
    """The gateway of the first default route not through a utun (ours or another VPN's) and not a
    bare link (``link#N``): where endpoint host routes go."""
    for entry in entries:
        if entry.destination != "default" or entry.netif.startswith("utun"):
            continue
        if entry.gateway.startswith("link#") or "G" not in entry.flags:
            continue
        return entry.gateway
    return None


# --- records ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TunnelRoutesAdded(UndoRecord):
    """Routes to ``destinations`` through ``ifname`` (the full tunnel's halves)."""

    kind = "darwin_routes"
    ifname: str
    destinations: tuple[str, ...]


@dataclass(frozen=True)
class EndpointRoutesAdded(UndoRecord):
    """Host routes to ``endpoints`` outside the tunnel."""

    kind = "darwin_endpoint_routes"
    endpoints: tuple[str, ...]


@REGISTRY.undoes(TunnelRoutesAdded)
def _delete_tunnel_routes(record: TunnelRoutesAdded, context: UndoContext) -> None:
    for destination in record.destinations:
        context.runner(route_delete(ip_network(destination), record.ifname), check=False)


@REGISTRY.undoes(EndpointRoutesAdded)
def _delete_endpoint_routes(record: EndpointRoutesAdded, context: UndoContext) -> None:
    context.endpoint_routes_removed(record.endpoints)  # first: a network change must not re-add them
    for endpoint in record.endpoints:
        context.runner(host_route_delete(endpoint), check=False)


class EndpointRoutes:
    """The endpoint host routes in place, and the gateway they use per family."""

    def __init__(self, runner: Runner) -> None:
        self.runner = runner
        self.endpoints: dict[str, str | None] = {}
        """Endpoint → the gateway its host route uses now."""
        self.lock = threading.Lock()
        """Held while routes are added, moved or forgotten (the helper's thread, the network watch)."""

    def table(self, version: int) -> list[RouteEntry]:
        proc = self.runner([NETSTAT, "-nr", "-f", "inet6" if version == 6 else "inet"], check=False)
        return parse_netstat(proc.stdout) if proc.returncode == 0 else []

    def gateway(self, version: int) -> str | None:
        return original_gateway(self.table(version))

    def needed(self, endpoints: Sequence[str]) -> list[str]:
        """The endpoints that need a host route of ours: not loopback, link-local or unspecified
        (never re-routed), and without a host route already (this Mac's own addresses have one; so
        does an endpoint another tunnel routes) — a route we did not add is never ours to delete."""
        tables = {4: self.table(4), 6: self.table(6)}
        needed = []
        for endpoint in dict.fromkeys(endpoints):
            ip = ip_address(endpoint)
            if ip.is_loopback or ip.is_link_local or ip.is_unspecified or endpoint in self.endpoints:
                continue
            hosts = {e.destination.split("%")[0] for e in tables[ip.version] if "H" in e.flags}
            if str(ip) not in hosts:
                needed.append(str(ip))
        return needed

    def add(self, endpoints: Sequence[str]) -> None:
        with self.lock:
            gateways = {4: self.gateway(4), 6: self.gateway(6)}
            for endpoint in endpoints:
                gateway = gateways[ip_address(endpoint).version]
                self.runner(host_route_add(endpoint, gateway))
                self.endpoints[endpoint] = gateway

    def reapply(self) -> list[str]:
        """After a network change: move the host routes whose gateway changed; returns those."""
        with self.lock:
            if not self.endpoints:
                return []
            gateways = {4: self.gateway(4), 6: self.gateway(6)}
            moved = [e for e, gw in self.endpoints.items() if gateways[ip_address(e).version] != gw]
            for endpoint in moved:
                self.runner(host_route_delete(endpoint), check=False)
                self.runner(host_route_add(endpoint, gateways[ip_address(endpoint).version]))
                self.endpoints[endpoint] = gateways[ip_address(endpoint).version]
            return moved

    def forget(self, endpoints: Iterable[str]) -> None:
        with self.lock:
            for endpoint in endpoints:
                self.endpoints.pop(endpoint, None)


def _not_default(destinations: Sequence[Network]) -> list[Network]:
    return [d for d in destinations if d.prefixlen != 0]


class DarwinRouting:
    """One routing table; the full tunnel as two half routes per family plus endpoint host routes."""

    def __init__(self, runner: Runner, on_active: Callable[[], None] = lambda: None) -> None:
        self.runner = runner
        self.endpoint_routes = EndpointRoutes(runner)
        self.on_active = on_active
        """Called when endpoint routes are in place (the backend starts following network changes)."""

    def add_routes(self, ifname: str, destinations: Sequence[Network], table: str) -> None:
        """Routes through ``ifname`` (macOS has one table: ``table`` is not used). A default route
        (``/0``) is the full tunnel's, which the helper routes by the table of its mark on Linux: here
        `full_tunnel_on` carries it as halves, so it is never added — it would collide with the
        system's default route (or, without one, replace it), and its undo would delete that."""
        for destination in _not_default(destinations):
            proc = self.runner(route_add(destination, ifname), check=False)
            if proc.returncode != 0 and "File exists" not in proc.stderr:
                raise PlatformError(
                    f"cannot add the route to {destination} via {ifname}: {proc.stderr.strip()}"
                )

    def delete_routes(self, ifname: str, destinations: Sequence[Network], table: str) -> None:
        """``route delete`` matches by destination, not interface, so a route is deleted only while it
        goes through ``ifname`` (``route -n get`` with a prefix is an exact lookup): where `add_routes`
        found one already there ("File exists": the LAN's, another VPN's), the journal still lists it,
        and deleting it would take the user's route away. A default route is never deleted (`add_routes`
        never adds one; the system's would go). wg-quick checks the same way before it adds."""
        for destination in _not_default(destinations):
            if self.route_interface(destination) == ifname:
                self.runner(route_delete(destination, ifname), check=False)

    def route_interface(self, destination: Network) -> str | None:
        """The interface of the route to exactly ``destination``; None when there is none."""
        proc = self.runner([ROUTE, "-n", "get", _family(destination), str(destination)], check=False)
        if proc.returncode != 0:
            return None
        return parse_route_get(proc.stdout).get("interface")

    def table_in_use(self, table: int) -> bool:
        return False  # no numbered tables on macOS

    def mark_in_use(self, mark: int) -> bool:
        return False  # no packet marks on macOS

    def route_mtu(self, destination: str) -> int | None:
        proc = self.runner([ROUTE, "-n", "get", str(destination)], check=False)
        if proc.returncode != 0:
            return None
        fields = parse_route_get(proc.stdout)
        mtu = fields.get("mtu", "0")
        return int(mtu) if mtu.isdigit() and int(mtu) > 0 else None

    def default_route_mtu(self) -> int | None:
        return self.route_mtu("default")

    def full_tunnel_on(self, tunnel: FullTunnel, record: Recorder) -> None:
        """Host routes to the endpoints first (while the default route still goes out), then the
        halves of each family the tunnel carries."""
        endpoints = tuple(self.endpoint_routes.needed(tunnel.endpoints))
        if endpoints:
            record(EndpointRoutesAdded(endpoints))
            self.endpoint_routes.add(endpoints)
            self.on_active()
        halves = [n for n in (*FULL4, *FULL6) if n.version in tunnel.families]
        record(TunnelRoutesAdded(tunnel.ifname, tuple(str(n) for n in halves)))
        for half in halves:
            self.runner(route_add(half, tunnel.ifname))

    def mark_routing_on(self, mark: int, families: frozenset[int], record: Recorder) -> None:
        raise Unsupported("macOS has no routing by packet mark (apps cannot be included in a tunnel)")

    def mark_settings(self, families: frozenset[int]) -> tuple[MachineSetting, ...]:
        return ()

    def read_setting(self, key: str) -> str:
        raise Unsupported(f"machine setting {key} does not exist on macOS")

    def write_setting(self, key: str, value: str) -> None:
        raise Unsupported(f"machine setting {key} does not exist on macOS")
