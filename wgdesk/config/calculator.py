"""The AllowedIPs calculator: "route these ranges, except those", as the fewest CIDR blocks.

WireGuard (and the routes wg-quick derives from AllowedIPs) only knows prefixes, so "everything but my
LAN" has to be written as the blocks that cover exactly the difference. Any set of addresses has one
minimal prefix cover (its maximal aligned blocks); `allowed_ips` returns it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from ipaddress import IPv4Network, IPv6Network, collapse_addresses
from typing import TypeVar

from wgdesk.config.model import ConfigError, IPNetwork
from wgdesk.config.parser import SPACE, InvalidValue, check_ip, check_network, list_entries, parse

__all__ = [
    "PRIVATE_LAN_RANGES",
    "allowed_ips",
    "parse_networks",
    "private_ranges",
    "with_allowed_ips",
]

PRIVATE_LAN_RANGES: tuple[str, ...] = (
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "169.254.0.0/16",
    "fe80::/10",
    "fc00::/7",
)
"""Local networks: RFC 1918, IPv4 link-local (RFC 3927), IPv6 link-local and unique local (RFC 4193).

The one definition behind both the helper's "allow LAN" kill-switch exemption and the calculator's
"keep local networks out of the tunnel". Not included: 100.64.0.0/10 (RFC 6598 shared address space is
the ISP's carrier-grade NAT and other overlay VPNs' space, not the user's LAN; exempting it would send
traffic to the ISP) and multicast (not a network one reaches hosts in; link-scope multicast leaves by the
interface the sending socket picks, not by AllowedIPs routes).
"""


def private_ranges() -> list[IPNetwork]:
    """`PRIVATE_LAN_RANGES` as networks."""
    return parse_networks(PRIVATE_LAN_RANGES, "PRIVATE_LAN_RANGES")


def parse_networks(entries: Iterable[str], what: str = "AllowedIPs") -> list[IPNetwork]:
    """Networks from text entries, each `ADDRESS[/PREFIX]`; an entry may hold several separated by
    commas or spaces (a pasted `AllowedIPs` value). A bare address is one host (/32 or /128).

    Raises:
        ConfigError: `what` in place of the file name; for an entry that is not an address with an
            optional prefix, or that has host bits set (`192.168.1.5/24`: the message suggests
            `192.168.1.0/24`), since a typo there would silently widen or move the range.
    """
    networks: list[IPNetwork] = []
    for value in entries:
        for entry in list_entries(value):
            try:
                network = check_network(entry)
            except InvalidValue as exc:
                message = str(exc).replace("AllowedIPs entry", "entry", 1)
                raise ConfigError(what, None, None, message) from None
            address = check_ip(entry.partition("/")[0])
            if address != network.network_address:
                raise ConfigError(
                    what,
                    None,
                    None,
                    f"entry `{entry}` has host bits set: the /{network.prefixlen} block that holds it is "
                    f"`{network}`",
                )
            networks.append(network)
    return networks


_Net = TypeVar("_Net", IPv4Network, IPv6Network)


def _difference(include: list[_Net], exclude: list[_Net]) -> list[_Net]:
    """(⋃include) − (⋃exclude) for networks of one family, as disjoint networks."""
    pieces = include
    for hole in exclude:
        remaining: list[_Net] = []
        for piece in pieces:
            if piece.subnet_of(hole):
                continue
            if hole.subnet_of(piece):
                remaining.extend(piece.address_exclude(hole))
            else:  # two prefixes either nest or are disjoint
                remaining.append(piece)
        pieces = remaining
    return pieces


def allowed_ips(
    include: Sequence[IPNetwork | str], exclude: Sequence[IPNetwork | str] = ()
) -> list[IPNetwork]:
    """The minimal sorted list of networks that covers exactly (⋃include) − (⋃exclude).

    Each family is computed on its own; IPv4 comes first, then IPv6, each in address order. An
    exclude range of a family with nothing included is ignored. Strings are read by `parse_networks`.
    The result is empty when the excluded ranges cover everything included.

    Raises:
        ConfigError: for a string entry `parse_networks` refuses (named `include` or `exclude`).
    """
    inc = _networks(include, "include")
    exc = _networks(exclude, "exclude")
    v4 = _family(IPv4Network, inc, exc)
    v6 = _family(IPv6Network, inc, exc)
    result: list[IPNetwork] = [*v4, *v6]
    return result


def _family(family: type[_Net], include: list[IPNetwork], exclude: list[IPNetwork]) -> list[_Net]:
    wanted = list(collapse_addresses(n for n in include if isinstance(n, family)))
    holes = list(collapse_addresses(n for n in exclude if isinstance(n, family)))
    return list(collapse_addresses(_difference(wanted, holes)))


def _networks(values: Sequence[IPNetwork | str], what: str) -> list[IPNetwork]:
    networks: list[IPNetwork] = []
    for value in values:
        if isinstance(value, str):
            networks.extend(parse_networks([value], what))
        else:
            networks.append(value)
    return networks


def with_allowed_ips(text: str, peer: int, networks: Sequence[IPNetwork], filename: str = "wg0.conf") -> str:
    """`text` with the `peer`-th [Peer]'s (1-based) AllowedIPs set to `networks`, nothing else changed.

    The first AllowedIPs line of that peer gets the new value in place (its key spelling, spacing and
    comment stay); further AllowedIPs lines of that peer are removed, leaving their comments as comment
    lines. Without an AllowedIPs line, one is added after the peer's last setting.

    Raises:
        ConfigError: when `text` does not parse, `peer` is not one of its peers, or `networks` is empty
            (`AllowedIPs =` with no value is an error for `wg`).
    """
    config = parse(text, filename)
    if not 1 <= peer <= len(config.peers):
        raise ConfigError(filename, None, None, f"there is no peer number {peer}")
    if not networks:
        raise ConfigError(filename, None, "AllowedIPs", "AllowedIPs would be empty")
    value = ", ".join(str(n) for n in networks)
    lines = text.split("\n")
    found = [s.number for s in config.lines if s.section == peer and s.key == "AllowedIPs"]
    if not found:
        last = max(s.number for s in config.lines if s.section == peer)
        newline = "\r" if lines[last - 1].endswith("\r") else ""
        lines.insert(last, f"AllowedIPs = {value}{newline}")
        return "\n".join(lines)
    lines[found[0] - 1] = _replace_value(lines[found[0] - 1], value)
    for number in reversed(found[1:]):
        _, hash_, comment = lines[number - 1].partition("#")
        if hash_:
            lines[number - 1] = "#" + comment
        else:
            del lines[number - 1]
    return "\n".join(lines)


def _replace_value(line: str, value: str) -> str:
    content = line.split("#", 1)[0]
    start = content.index("=") + 1
    while start < len(content) and content[start] in SPACE:
        start += 1
    end = len(content.rstrip(SPACE))
    return line[:start] + value + line[max(start, end) :]
