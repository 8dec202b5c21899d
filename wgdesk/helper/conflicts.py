"""Which tunnels may be up together: what one owner's tunnel may do to routes that carry another
owner's traffic (docs/threat-model.md).

Routing is machine-wide: a route one user's tunnel adds carries every user's packets. The helper
therefore gives a tunnel that is up a *footprint* — the destinations it routes (a full tunnel's
default routes included), its addresses and their connected prefixes, its DNS servers and its
endpoints, the routing tables and firewall marks it uses — and refuses a tunnel of another owner
(``conflict``) that would

* route, or put an address on, anything inside that footprint: a more specific route in the main
  table beats a full tunnel's default route (``suppress_prefixlength 0`` looks there first), and an
  address goes into the local table, which beats everything;
* use one of its routing tables or marks (a route in a full tunnel's table is looked up by that
  tunnel's own policy rule);
* override DNS while it does (every user's queries would go to the newcomer's servers);
* be a full tunnel while its tunnel sends included apps only through itself (the full tunnel's
  policy rule would divert them).

Tunnels of one owner keep the older, looser rules (their own split tunnel may sit under their own
full tunnel, as with wg-quick): only one full tunnel at a time, and no overlapping non-default
routes. What no tunnel carries — the LAN, other users' traffic while no tunnel of theirs is up — is
not anyone's: the first tunnel up takes what it routes, for every user (that is what a VPN on a
shared machine does). A non-root owner may only use a routing table nothing on this machine uses
yet (`system_table_refusal`).

All checks are O(n log m): each footprint keeps its ranges merged and sorted per family
(`Ranges`), and a new tunnel's n networks are looked up by binary search.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from ipaddress import IPv4Network, IPv6Network, ip_interface, ip_network

Network = IPv4Network | IPv6Network

RESERVED_TABLES = {"0": "unspec", "253": "default", "254": "main", "255": "local"}
"""The kernel's fixed routing tables (rt_tables); only main is shared by every tunnel."""
_TABLE_NUMBERS = {"unspec": "0", "default": "253", "main": "254", "local": "255"}


class Conflict(Exception):
    """The tunnel cannot come up beside one that is up; the message says which and why."""


class Ranges:
    """A set of networks of both families as merged, sorted address ranges: O(log n) overlap queries."""

    def __init__(self, nets: Iterable[Network]) -> None:
        spans: dict[int, list[tuple[int, int]]] = {4: [], 6: []}
        for n in nets:
            spans[n.version].append((int(n.network_address), int(n.broadcast_address)))
        self._starts: dict[int, list[int]] = {}
        self._ends: dict[int, list[int]] = {}
        for version, items in spans.items():
            items.sort()
            starts: list[int] = []
            ends: list[int] = []
            for first, last in items:
                if ends and first <= ends[-1] + 1:
                    ends[-1] = max(ends[-1], last)
                else:
                    starts.append(first)
                    ends.append(last)
            self._starts[version], self._ends[version] = starts, ends

    def overlaps(self, net: Network) -> bool:
        starts, ends = self._starts[net.version], self._ends[net.version]
        i = bisect_right(starts, int(net.broadcast_address)) - 1
        return i >= 0 and ends[i] >= int(net.network_address)


def first_overlap(
    ours: Iterable[Network], theirs: Sequence[Network], ranges: Ranges | None = None
) -> tuple[Network, Network] | None:
    """A pair (one of ``ours``, one of ``theirs``) that overlap, or None; O((n + m) log m)."""
    ranges = ranges or Ranges(theirs)
    for net in ours:
        if ranges.overlaps(net):
            return net, next(t for t in theirs if t.version == net.version and t.overlaps(net))
    return None


def table_id(table: str) -> str:
    """A routing table as a number string (``main`` → ``254``); other names stay as they are."""
    return _TABLE_NUMBERS.get(table.lower(), table.lower())


@dataclass
class Footprint:
    """What one tunnel that is up takes of this machine's routing (see the module docstring)."""

    name: str
    owner: int
    routes: tuple[Network, ...] = ()
    """Destinations it routes, into any table (a full tunnel's default routes included)."""
    addresses: tuple[Network, ...] = ()
    """Its addresses as host prefixes, and the prefixes the kernel routes to the link for them."""
    dns: tuple[Network, ...] = ()
    endpoints: tuple[Network, ...] = ()
    tables: frozenset[str] = frozenset()
    """Routing tables it writes (numbers as strings; ``main`` is everybody's and not listed)."""
    marks: frozenset[int] = frozenset()
    full: bool = False
    sets_dns: bool = False
    include_families: frozenset[int] = frozenset()
    """Families whose included apps go only through this tunnel."""
    held: tuple[Network, ...] = field(init=False)
    """Everything another owner's tunnel must keep out of."""

    def __post_init__(self) -> None:
        self.held = (*self.routes, *self.addresses, *self.dns, *self.endpoints)

    @cached_property
    def held_ranges(self) -> Ranges:
        return Ranges(self.held)

    @cached_property
    def split_routes(self) -> tuple[Network, ...]:
        return tuple(n for n in self.routes if n.prefixlen)

    @cached_property
    def split_ranges(self) -> Ranges:
        return Ranges(self.split_routes)

    @property
    def taking(self) -> tuple[Network, ...]:
        """What a new tunnel would take from others: its routes and addresses."""
        return (*self.routes, *self.addresses)

    @property
    def numbers(self) -> frozenset[str]:
        """Its tables and marks, both as the numbers a policy rule matches."""
        return self.tables | {str(m) for m in self.marks}


def address_networks(addresses: Iterable[str]) -> tuple[Network, ...]:
    """Each interface address as a host prefix and as the connected prefix the kernel routes."""
    out: list[Network] = []
    for a in addresses:
        iface = ip_interface(a)
        out.append(ip_network(iface.ip))
        if iface.network.prefixlen < iface.max_prefixlen:
            out.append(iface.network)
    return tuple(out)


def host_networks(ips: Iterable[str]) -> tuple[Network, ...]:
    return tuple(ip_network(ip) for ip in ips)


def check(new: Footprint, others: Iterable[Footprint]) -> None:
    """Raise `Conflict` when ``new`` may not come up beside the tunnels ``others`` that are up."""
    for other in others:
        if other.name == new.name:
            continue
        if new.full and other.full:
            raise Conflict(
                f"tunnel {other.name} is already a full tunnel; only one full tunnel can be up at a time"
            )
        if other.owner != new.owner:
            _check_other_owner(new, other)
        if new.split_routes and other.split_routes:
            pair = first_overlap(new.split_routes, other.split_routes, other.split_ranges)
            if pair is not None:
                raise Conflict(
                    f"{pair[0]} overlaps {pair[1]}, which tunnel {other.name} "
                    "already routes; take it down first or change AllowedIPs"
                )


def _check_other_owner(new: Footprint, other: Footprint) -> None:
    whose = f"tunnel {other.name} of another user"
    pair = first_overlap(new.taking, other.held, other.held_ranges) if other.held else None
    if pair is not None:
        mine, theirs = pair
        what = "address" if mine in new.addresses and mine not in new.routes else "route"
        raise Conflict(
            f"the {what} {mine} would take traffic that {whose} carries ({theirs}); "
            "a tunnel may not route or address anything inside another user's tunnel"
        )
    shared = sorted(new.numbers & other.numbers)
    if shared:
        raise Conflict(
            f"routing table or firewall mark {shared[0]} is used by {whose}; "
            "remove Table/FwMark from the config (wgdesk picks free ones)"
        )
    if new.sets_dns and other.sets_dns:
        raise Conflict(
            f"{whose} sets this computer's DNS servers; only one user's tunnels can do that at a time"
        )
    if new.full and other.include_families:
        raise Conflict(
            f"{whose} carries apps started with `wgdeskctl include`; a full tunnel would take them"
        )
    if new.include_families and other.full:
        raise Conflict(f"{whose} is a full tunnel; it would take the apps this tunnel includes")


def system_table_refusal(table: str, in_use: Callable[[str], bool], own: Iterable[Footprint]) -> str | None:
    """Why a non-root owner may not write routes into ``table`` (a ``Table =`` value, or the table a
    full tunnel with an explicit ``FwMark`` uses), or None. ``in_use(number)`` asks the system
    whether any route or policy rule uses it; tables of the owner's own tunnels are fine."""
    number = table_id(table)
    if number in ("off", "auto", "254"):
        return None
    if not number.isdigit():
        return f"Table = {table}: use a table number (named tables are for the administrator)"
    if number in RESERVED_TABLES:
        return f"Table = {table}: the kernel's {RESERVED_TABLES[number]} table is not for tunnels"
    if any(number in f.numbers for f in own):
        return None
    if in_use(number):
        return (
            f"table {number} is already used on this computer (routes or policy rules); "
            "choose a free table number or leave Table out"
        )
    return None
