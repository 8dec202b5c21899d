"""Path MTU through a running tunnel: DF pings of chosen sizes to an address inside the tunnel.

A router on the way that drops large UDP datagrams without an ICMP "fragmentation needed" (PPPoE,
mobile, hotel networks) is an MTU black hole: the handshake and pings pass, every full-size TCP
segment vanishes. `probe` finds the largest inner packet that still crosses, pinging with the
don't-fragment bit set through the tunnel interface, and recommends it as the tunnel's MTU.

Only sizes where the outer datagram can change are probed. WireGuard pads every plaintext to a
multiple of 16 bytes (capped at the interface MTU), so an inner packet of ``P`` bytes travels as an
outer one of ``roundup16(P) + 32`` (message header 16 + Poly1305 tag 16) + 8 (UDP) + 20 (IPv4) or
40 (IPv6) bytes: the largest inner size that crosses is always a multiple of 16 or the current MTU
itself. The candidates are therefore the current MTU and the multiples of 16 from 1280 (the IPv6
minimum, which wg-quick also never goes below) up to it — 10 for an MTU of 1420, found by binary
search in at most 5 probes after the first two (the current MTU, then 1280).

Each probe is one DF ping through the tunnel interface, sent by the OS backend
(`wgdesk.platforms.interface.NetworkView.ping`; on Linux ``ping -M do -c 1 -W 1 -I IFACE`` run as an
absolute path without a shell — the target is a validated IP address literal, never a name); a lost
echo is asked once more before the size counts as too big.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import TYPE_CHECKING, Any

from wgdesk.platforms import backend

if TYPE_CHECKING:
    from wgdesk.config import Config

MIN_MTU = 1280
"""The smallest MTU probed or recommended (the IPv6 minimum)."""
PADDING = 16
"""WireGuard pads plaintext to a multiple of this many bytes."""


class MtuError(Exception):
    """No target to probe, or a target the probe refuses; the message says what to give instead."""


@dataclass
class ProbeResult:
    """What `probe` found. ``largest_working`` is None when not even 1280 bytes crossed."""

    target: str
    mtu_before: int
    largest_working: int | None
    recommended_mtu: int | None
    probes: list[tuple[int, bool]] = field(default_factory=list)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "mtu_before": self.mtu_before,
            "largest_working": self.largest_working,
            "recommended_mtu": self.recommended_mtu,
            "probes": [[size, ok] for size, ok in self.probes],
            "seconds": round(self.seconds, 3),
        }


def candidates(mtu: int) -> list[int]:
    """Sizes worth probing below an interface MTU of ``mtu``, ascending (see the module docstring)."""
    sizes = list(range(MIN_MTU, mtu, PADDING))
    return [*sizes, mtu] if mtu >= MIN_MTU else []


def search(sizes: Sequence[int], works: Callable[[int], bool]) -> tuple[int | None, list[tuple[int, bool]]]:
    """The largest of ascending ``sizes`` for which ``works`` holds, assuming every smaller one works
    too; asks the largest first (no black hole: one probe), then the smallest, then bisects."""
    probes: list[tuple[int, bool]] = []

    def ask(size: int) -> bool:
        ok = works(size)
        probes.append((size, ok))
        return ok

    if not sizes:
        return None, probes
    if ask(sizes[-1]):
        return sizes[-1], probes
    if len(sizes) == 1 or not ask(sizes[0]):
        return None, probes
    lo, hi = 0, len(sizes) - 1  # sizes[lo] works, sizes[hi] does not
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if ask(sizes[mid]):
            lo = mid
        else:
            hi = mid
    return sizes[lo], probes


def probe(
    ifname: str, target: str, mtu_before: int, works: Callable[[int], bool] | None = None
) -> ProbeResult:
    """Probe the path MTU through ``ifname`` to ``target`` (sizes up to ``mtu_before``)."""
    check = works or (lambda size: backend().network.ping(ifname, target, size))
    started = time.monotonic()
    largest, probes = search(candidates(mtu_before), check)
    return ProbeResult(target, mtu_before, largest, largest, probes, time.monotonic() - started)


def _inside(cfg: Config, address: IPv4Address | IPv6Address) -> bool:
    return any(address in n for p in cfg.peers for n in p.allowed_ips if n.version == address.version)


def check_target(cfg: Config, text: str) -> str:
    """``text`` as a probe target: an IP address (no name) inside some peer's AllowedIPs."""
    try:
        address = ip_address(text)
    except ValueError as e:
        raise MtuError(f"target must be an IP address, not {text[:60]!r}") from e
    if address.is_multicast or address.is_unspecified or address.is_loopback or address.is_link_local:
        raise MtuError(f"target {address} is not a unicast address a peer could answer from")
    if not _inside(cfg, address):
        raise MtuError(f"target {address} is not inside any peer's AllowedIPs: the tunnel would not carry it")
    return str(address)


def default_target(cfg: Config) -> str:
    """The first DNS server inside the peers' AllowedIPs, else the first host route (/32 or /128)
    of AllowedIPs; raises `MtuError` when neither exists."""
    for server in cfg.interface.dns:
        address = ip_address(str(server))
        if _inside(cfg, address) and not address.is_loopback:
            return str(address)
    for p in cfg.peers:
        for n in p.allowed_ips:
            if n.prefixlen == n.max_prefixlen:
                return str(n.network_address)
    raise MtuError(
        "no address to probe: the config has no DNS server inside AllowedIPs and no host route "
        "(/32 or /128) in AllowedIPs; give a target inside the tunnel that answers pings "
        "(for example the server's tunnel address)"
    )


def link_mtu(ifname: str) -> int:
    """The MTU the interface has now."""
    return backend().tunnels.mtu(ifname)
