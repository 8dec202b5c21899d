"""Cryptokey routing across tunnels: which tunnel and peer would carry a packet to an address.

Two tables decide, as on a real system with wgdesk's helper:

1. The kernel's routes, as the helper installs them (wg-quick's scheme). With ``Table = auto`` a
   tunnel's AllowedIPs other than ``0.0.0.0/0``/``::/0`` become routes in the main table. A full
   tunnel puts its default route in its own table (numbered by its fwmark) and adds the rules
   ``not fwmark M lookup M`` and, before it, ``lookup main suppress_prefixlength 0``: any main-table
   route more specific than a default route — a split tunnel's, the local network's — still wins,
   everything else goes to the full tunnel. ``Table = main`` routes everything (default included)
   in the main table; ``Table = off`` or another table routes nothing wgdesk's rules look at.
2. Inside the chosen tunnel, the engine's cryptokey routing table (whitepaper §2): the peer whose
   AllowedIPs hold the longest prefix containing the address. The table is
   `wgdesk.proto.allowedips.AllowedIPs`, filled section by section as the helper configures the
   engine (a repeated ``[Peer]`` replaces its earlier AllowedIPs; a prefix given to two peers
   belongs to the later one).

Pure: the caller passes the stored configs, which tunnels are running (with the helper's
full-tunnel flag) and the machine's own networks (`wgdesk.platforms.local_networks`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from ipaddress import ip_network
from typing import TYPE_CHECKING

from wgdesk.config.model import Config, IPAddress, IPNetwork, Peer
from wgdesk.proto.allowedips import AllowedIPs

if TYPE_CHECKING:
    from wgdesk.snapshots import PeerSnapshot, TunnelSnapshot

__all__ = ["Carrier", "Explanation", "explain", "explain_status", "kernel_text", "would_be_full_tunnel"]


@dataclass(frozen=True)
class Carrier:
    """The tunnel (and peer) a packet is routed into.

    Attributes:
        tunnel: the tunnel's name.
        route: the kernel route that sends the packet into the tunnel.
        table: ``main``, or the full tunnel's own table: its fwmark, ``full`` when not known.
        peer: the public key of the peer that carries it; None when no peer's AllowedIPs hold the
            address (the engine then drops the packet).
        allowed_ip: the peer's AllowedIPs entry that matched (longest prefix), None with ``peer``.
    """

    tunnel: str
    route: IPNetwork
    table: str
    peer: str | None
    allowed_ip: IPNetwork | None

    def describe(self) -> str:
        """One line: ``tunnel office, peer ABC…= (AllowedIPs 10.0.0.0/8)``."""
        if self.peer is None:
            return (
                f"tunnel {self.tunnel} (route {self.route}), but no peer's AllowedIPs contain it: "
                "the tunnel drops it"
            )
        return f"tunnel {self.tunnel}, peer {self.peer} (AllowedIPs {self.allowed_ip})"


@dataclass(frozen=True)
class Explanation:
    """Where a packet to `address` goes.

    Attributes:
        address: the destination.
        carrier: the running tunnel that carries it, None when it goes through no tunnel.
        reason: why, in one sentence (which route won over which).
        blocked: set when wgdesk's firewall rejects the packet instead of letting it out: the kill
            switch for traffic outside the tunnels, or an IPv4-only full tunnel for IPv6 to any
            other interface (the sentence says which).
        if_up: for tunnels that are down, where it would go if that tunnel (alone) were brought up
            as well; only tunnels that would then carry it.
        notes: anything else worth knowing (unused routing tables, tunnels that could not come up).
    """

    address: IPAddress
    carrier: Carrier | None
    reason: str
    blocked: str | None = None
    if_up: tuple[Carrier, ...] = ()
    notes: tuple[str, ...] = field(default=())
    running: frozenset[str] = frozenset()
    """The tunnels that are up (their interfaces have the tunnel's name)."""

    @property
    def verdict(self) -> str:
        """What wgdesk's rules say, in one line (without the address)."""
        if self.carrier is not None and self.blocked is not None:
            return f"{self.carrier.describe()}, but blocked: {self.blocked}"
        if self.carrier is not None:
            return self.carrier.describe()
        if self.blocked is not None:
            return f"not through any tunnel, and blocked: {self.blocked}"
        return "not through any tunnel (straight out)"

    def lines(self, kernel: Mapping[str, str] | None = None, kernel_checked: bool = False) -> list[str]:
        """The explanation as text lines: the address, then indented the verdict of wgdesk's rules,
        why, the tunnels that are down, notes and (with `kernel_checked`) the kernel's own answer
        `kernel` (`wgdesk.platforms.route_to`, None when it had none)."""
        out = [str(self.address), f"  wgdesk's rules say: {self.verdict}", f"  why: {self.reason}"]
        out.extend(f"  if {c.tunnel} were up: {c.describe()}" for c in self.if_up)
        out.extend(f"  note: {n}" for n in self.notes)
        if kernel_checked:
            out.append(f"  the kernel routes it via: {kernel_text(kernel)}")
            if kernel is not None and kernel.get("type", "unicast") == "unicast":
                dev = kernel.get("dev")
                if (self.carrier is not None and dev != self.carrier.tunnel) or (
                    self.carrier is None and dev in self.running
                ):
                    out.append(
                        "  note: the kernel disagrees with wgdesk's rules: routes or rules that wgdesk "
                        "did not add (or a change since) decide"
                    )
        return out


def kernel_text(route: Mapping[str, str] | None) -> str:
    """`wgdesk.platforms.route_to`'s answer as text: ``eth0 (gateway 192.0.2.1, from 192.0.2.2)``."""
    if route is None:
        return "no route (or this system cannot tell)"
    if route.get("type") == "local":
        return f"{route.get('dev', '?')} (an address of this machine)"
    extra = [
        f"{label} {route[key]}"
        for key, label in (("gateway", "gateway"), ("source", "from"), ("table", "table"))
        if route.get(key)
    ]
    if route.get("type"):
        extra.append(str(route["type"]))
    return route.get("dev", "?") + (f" ({', '.join(extra)})" if extra else "")


@dataclass(frozen=True)
class _Route:
    net: IPNetwork
    table: str  # "main" or "full:NAME", full tunnel NAME's own table
    tunnel: str | None  # None: one of the machine's own networks


class _Key:
    """A peer's identity in `AllowedIPs` (which compares values by identity)."""

    __slots__ = ("public_key",)

    def __init__(self, public_key: str) -> None:
        self.public_key = public_key


def _table(cfg: Config) -> str:
    return (cfg.interface.table or "auto").lower()


def would_be_full_tunnel(cfg: Config, preference: bool | None = None) -> bool:
    """Whether the helper makes `cfg` a full tunnel when asked with `preference` (None: its default):
    a peer has ``0.0.0.0/0`` or ``::/0``, ``Table`` is ``auto`` and the user did not turn it off."""
    return (
        preference is not False
        and _table(cfg) == "auto"
        and any(n.prefixlen == 0 for n in cfg.all_allowed_ips())
    )


def _routes(name: str, cfg: Config, full: bool) -> list[_Route]:
    """The routes the helper installs for a running tunnel that wgdesk's rules consult."""
    table = _table(cfg)
    routes: list[_Route] = []
    for n in cfg.all_allowed_ips():
        if table == "auto":
            if n.prefixlen:
                routes.append(_Route(n, "main", name))
            elif full:
                routes.append(_Route(n, f"full:{name}", name))
        elif table == "main":
            routes.append(_Route(n, "main", name))
    return routes


def _engine_table(cfg: Config) -> AllowedIPs[_Key]:
    """The engine's cryptokey routing table for `cfg`, filled as the helper configures it."""
    table: AllowedIPs[_Key] = AllowedIPs()
    keys: dict[str, _Key] = {}
    for p in cfg.peers:
        key = keys.get(p.public_key)
        if key is None:
            key = keys[p.public_key] = _Key(p.public_key)
        table.remove_by_value(key)  # each section replaces the peer's AllowedIPs (replace_allowed_ips)
        for n in p.allowed_ips:
            table.insert(n, key)
    return table


def _peer(cfg: Config, address: IPAddress) -> tuple[str | None, IPNetwork | None]:
    table = _engine_table(cfg)
    key = table.lookup(address.packed)
    if key is None:
        return None, None
    best = max((n for n in table.entries(key) if address in n), key=lambda n: n.prefixlen)
    return key.public_key, best


def _best(routes: Sequence[_Route], address: IPAddress, table: str, suppress: bool) -> _Route | None:
    """Longest-prefix match in one table; ties go to the earlier route (tunnels before the LAN)."""
    best: _Route | None = None
    for r in routes:
        if r.table != table or r.net.version != address.version or address not in r.net:
            continue
        if suppress and r.net.prefixlen == 0:
            continue
        if best is None or r.net.prefixlen > best.net.prefixlen:
            best = r
    return best


def _decide(
    address: IPAddress,
    tunnels: Mapping[str, Config],
    running: Mapping[str, bool],
    local: Sequence[IPNetwork],
) -> tuple[_Route | None, str, str | None]:
    """(winning route, a local network's or None for "straight out", reason, why it is blocked)."""
    if address.is_loopback:
        return None, "it is a loopback address: this machine itself", None
    routes: list[_Route] = []
    full_name: str | None = None
    full_families: set[int] = set()
    for name, full in running.items():
        cfg = tunnels.get(name)
        if cfg is None:
            continue
        routes += _routes(name, cfg, full)
        if full and _table(cfg) == "auto":
            families: set[int] = {n.version for n in cfg.all_allowed_ips() if n.prefixlen == 0}
            if families:
                full_name, full_families = name, families
    routes += [_Route(n, "main", None) for n in local]
    if full_name is not None and address.version in full_families:
        specific = _best(routes, address, "main", suppress=True)
        if specific is not None:
            what = f"tunnel {specific.tunnel}'s route" if specific.tunnel else "the local network"
            return (
                specific,
                f"{what} {specific.net} is more specific than full tunnel {full_name}'s default route "
                "(wgdesk's rule `lookup main suppress_prefixlength 0` comes first)",
                None,
            )
        default = _best(routes, address, f"full:{full_name}", suppress=False)
        assert default is not None
        return default, f"full tunnel {full_name} routes everything no more specific route claims", None
    best = _best(routes, address, "main", suppress=False)
    blocked = None
    v6_leak = address.version == 6 and not (address.is_link_local or address.is_multicast)
    if full_name is not None and v6_leak and 6 not in full_families:
        blocked = (
            f"full tunnel {full_name} carries IPv4 only and rejects IPv6 to any other interface "
            "so that none leaks past it (private LAN ranges pass when the helper's allow_lan is on)"
        )
    if best is not None and best.tunnel is not None:
        return best, f"tunnel {best.tunnel} routes {best.net} in the main table (longest prefix)", blocked
    if best is not None:
        return None, f"it is on the local network {best.net}", blocked
    if not running:
        return None, "no tunnel is up", blocked
    return None, "no tunnel that is up has a route containing it", blocked


def _carrier(route: _Route, tunnels: Mapping[str, Config], address: IPAddress, fwmark: str) -> Carrier:
    assert route.tunnel is not None
    peer, allowed = _peer(tunnels[route.tunnel], address)
    table = "main" if route.table == "main" else fwmark
    return Carrier(route.tunnel, route.net, table, peer, allowed)


def _conflict(
    name: str, cfg: Config, full: bool, tunnels: Mapping[str, Config], running: Mapping[str, bool]
) -> str:
    """Why the helper would refuse to bring `name` up next to the running tunnels ('' if it would not)."""
    mine = [r.net for r in _routes(name, cfg, full) if r.net.prefixlen]
    for other, other_full in running.items():
        ocfg = tunnels.get(other)
        if ocfg is None:
            continue
        if full and other_full:
            return f"{name} cannot come up while {other} is a full tunnel (only one can be up)"
        for r in _routes(other, ocfg, other_full):
            for n in mine:
                if r.net.prefixlen and r.net.version == n.version and r.net.overlaps(n):
                    return f"{name} cannot come up while {other} routes {r.net} (it overlaps {n})"
    return ""


def explain(
    address: IPAddress,
    tunnels: Mapping[str, Config],
    active: Mapping[str, bool],
    local: Sequence[IPNetwork] = (),
    preferences: Mapping[str, bool | None] | None = None,
    kill_switch: Sequence[str] = (),
    fwmarks: Mapping[str, int] | None = None,
) -> Explanation:
    """Where a packet to `address` goes.

    Args:
        address: the destination.
        tunnels: every tunnel's config by name (AllowedIPs, Table; keys are not needed).
        active: the running tunnels by name, each with its full-tunnel flag as the helper reports it.
            A running tunnel missing from `tunnels` is ignored.
        local: the machine's own networks (main-table routes of the physical links).
        preferences: the user's full-tunnel choice per tunnel that is down (None or absent: the
            helper's default), for the "if it were up" answers.
        kill_switch: tunnels whose kill switch is on (up or blocked): traffic that goes through no
            tunnel is then blocked.
        fwmarks: the running tunnels' fwmarks (the full tunnel's table number), when known.
    """
    prefs = preferences or {}
    marks = fwmarks or {}
    route, reason, blocked = _decide(address, tunnels, active, local)
    carrier = None
    if route is not None and route.tunnel is not None:
        carrier = _carrier(route, tunnels, address, str(marks.get(route.tunnel, "full")))
    if carrier is None and blocked is None and kill_switch and not address.is_loopback:
        blocked = (
            f"the kill switch of {', '.join(kill_switch)} lets nothing out outside the tunnels "
            "(except private LAN ranges when the helper's allow_lan is on)"
        )
    notes: list[str] = []
    if_up: list[Carrier] = []
    for name, cfg in tunnels.items():
        if name in active:
            table = _table(cfg)
            if table not in ("auto", "main", "off") and any(address in n for n in cfg.all_allowed_ips()):
                notes.append(
                    f"tunnel {name} routes its AllowedIPs into table {cfg.interface.table}, which no "
                    "rule of wgdesk's consults; only rules of your own send traffic there"
                )
            continue
        full = would_be_full_tunnel(cfg, prefs.get(name))
        hypothetical = {**active, name: full}
        r, _, _ = _decide(address, tunnels, hypothetical, local)
        if r is None or r.tunnel != name:
            continue
        conflict = _conflict(name, cfg, full, tunnels, active)
        if conflict:
            notes.append(conflict)
            continue
        if_up.append(_carrier(r, tunnels, address, "full"))
    running = frozenset(n for n in active if n in tunnels)
    return Explanation(address, carrier, reason, blocked, tuple(if_up), tuple(notes), running)


def explain_status(
    address: IPAddress,
    stored: Mapping[str, Config],
    status: Sequence[TunnelSnapshot],
    local: Sequence[IPNetwork] = (),
    preferences: Mapping[str, bool | None] | None = None,
) -> Explanation:
    """`explain` from the helper's ``status`` list (empty when the helper is not running: every
    tunnel counts as down). A running tunnel uses the AllowedIPs the engine reports (its live peers)
    with its stored ``[Interface]`` (``Table``); one that is not stored (``wgdeskctl up FILE``) gets
    ``Table = auto``."""
    tunnels = dict(stored)
    active: dict[str, bool] = {}
    kill: list[str] = []
    marks: dict[str, int] = {}
    for t in status:
        name, state = t.name, t.state
        if t.kill_switch and state in ("up", "blocked"):
            kill.append(name)
        if state != "up":
            continue
        active[name] = t.full_tunnel
        if t.fwmark:
            marks[name] = t.fwmark
        peers = _live_peers(t.peers)
        base = tunnels.get(name, Config())
        if peers is not None:
            tunnels[name] = Config(interface=base.interface, peers=peers)
    return explain(address, tunnels, active, local, preferences, kill, marks)


def _live_peers(peers: Sequence[PeerSnapshot]) -> tuple[Peer, ...] | None:
    if not peers:
        return None
    out: list[Peer] = []
    for p in peers:
        nets: list[IPNetwork] = []
        for text in p.allowed_ips:
            try:
                nets.append(ip_network(text, strict=False))
            except ValueError:
                continue
        out.append(Peer(p.public_key, allowed_ips=tuple(nets)))
    return tuple(out)
