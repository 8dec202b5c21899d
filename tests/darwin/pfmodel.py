"""A small model of pf's rule matching, for the rule forms the macOS backend generates, so tests can
ask what a ruleset does with a packet: anchors in name order, rules in order, the first ``quick``
match decides, else the last match, else pass (pf's default). No state tracking: a test asks about
the packet that would create the state.

It understands only: ``pass|block drop`` ``in|out`` ``quick`` ``on [!] IF`` ``inet|inet6`` ``proto P |
proto { P, P }`` ``all`` ``from HOST [port N]`` ``to HOST [port N]`` ``icmp6-type {…}`` (matched as
any ICMPv6) ``user N`` (the uid that created the packet's socket: `Packet.owner`; a packet without
a socket never matches, as pf.conf(5) says of forwarded packets). Anything else raises, so a new rule
form cannot pass unexamined.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from ipaddress import ip_address, ip_network


@dataclass(frozen=True)
class Packet:
    direction: str  # "in" | "out"
    interface: str
    proto: str  # "tcp" | "udp" | "icmp" | "icmp6"
    src: str
    dst: str
    sport: int = 0
    dport: int = 0
    owner: int | None = None
    """The uid the local socket sending or receiving it was created by (None: no local socket)."""


def _host_matches(spec: str, address: str) -> bool:
    if spec == "any":
        return True
    return ip_address(address) in ip_network(spec, strict=False)


_RULE = re.compile(
    r"^(?P<action>pass|block drop)"
    r"(?: (?P<dir>in|out))?"
    r"(?P<quick> quick)?"
    r"(?: on (?P<neg>! )?(?P<iface>\w+))?"
    r"(?: (?P<af>inet6?))?"
    r"(?: proto (?:\{ (?P<protos>[\w, ]+) \}|(?P<proto>\w+)))?"
    r"(?: (?P<all>all)| from (?P<src>\S+)(?: port (?P<sport>\d+))? to (?P<dst>\S+)(?: port (?P<dport>\d+))?)"
    r"(?: user (?P<user>\d+))?"
    r"(?: icmp6-type \{ [\w, ]+ \})?$"
)


def matches(rule: str, packet: Packet) -> tuple[bool, bool, bool]:
    """(matched, quick, passes) of one rule line."""
    found = _RULE.match(rule)
    if found is None:
        raise ValueError(f"pf model does not know the rule form: {rule!r}")
    g = found.groupdict()
    ok = True
    if g["dir"] and g["dir"] != packet.direction:
        ok = False
    if g["iface"] and (packet.interface == g["iface"]) == bool(g["neg"]):
        ok = False
    version = ip_address(packet.dst).version
    if g["af"] and (g["af"] == "inet6") != (version == 6):
        ok = False
    protos = (
        [p.strip() for p in g["protos"].split(",")] if g["protos"] else [g["proto"]] if g["proto"] else []
    )
    if protos and packet.proto not in protos:
        ok = False
    if not g["all"]:
        if not _host_matches(g["src"], packet.src) or not _host_matches(g["dst"], packet.dst):
            ok = False
        if g["sport"] and int(g["sport"]) != packet.sport:
            ok = False
        if g["dport"] and int(g["dport"]) != packet.dport:
            ok = False
    if g["user"] and packet.owner != int(g["user"]):
        ok = False
    return ok, bool(g["quick"]), g["action"] == "pass"


def verdict(anchors: dict[str, str], packet: Packet) -> str:
    """``pass`` or ``block`` for ``packet`` under the anchors (name → ruleset)."""
    decision = "pass"
    for _, rules in sorted(anchors.items()):
        for line in rules.splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            matched, quick, passes = matches(line, packet)
            if matched:
                decision = "pass" if passes else "block"
                if quick:
                    return decision
    return decision
