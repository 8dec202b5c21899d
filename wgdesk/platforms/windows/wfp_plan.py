"""The kill switch and lockdown as Windows Filtering Platform filters: a plan, as plain data.

What is let through, and why each rule exists, is decided here without touching Windows, so it is
reviewed as data (``tests/windows/golden/*.json``) and applied by `wgdesk.platforms.windows.wfp`. The
shape follows wireguard-windows' ``tunnel/firewall``: our own provider and sublayer (weight above
every other sublayer, so no other program's "permit" can override our "block" — within one sublayer
the highest-weight matching filter wins; across sublayers any block wins), filters at the ALE
connect and receive-accept layers of both families:

====== =============================================================================================
weight what
====== =============================================================================================
15     DNS (UDP and TCP port 53) through a tunnel's interface, to its DNS servers when it has any
14     block DNS otherwise — by the physical link, and on loopback: no query goes elsewhere
13     loopback
12     the engine executable (its UDP must leave by the physical link), the tunnel interfaces (by
       LUID), DHCP and DHCPv6, IPv6 neighbour discovery, the administrator's LAN ranges
0      block everything else
====== =============================================================================================

Both plans are *persistent*: they survive a helper crash and a restart of the filtering engine. For
the per-tunnel kill switch that is the point — a dynamic session would vanish with a crashed helper
while the tunnel's engine (and so its routes) died with it, and traffic would leave in the clear by
the physical link; the restarted helper finds the journal of the tunnel, keeps it blocked and
replaces the plan left behind (`wfp.FilterEngine.apply`), as the Linux helper does with its nft
table (issue 16). wireguard-windows keeps its kill switch in a dynamic session instead (its
``firewall/blocker.go``): a crash of its tunnel service fails open. Each plan has its own provider
and sublayer, so each is replaced or removed without touching the other. Lockdown also adds
*boot-time* filters (block all but loopback, enforced from boot until the filtering engine starts),
so neither a crash nor a reboot fails open; the kill switch has none: after a reboot it is enforced
from the moment the filtering engine has loaded it.

Keys are name-based UUIDs (`key`): the same plan always has the same keys, so an uninstaller or a
new helper removes every object of ours by key without remembering anything.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address, ip_address, ip_network
from typing import Any

NAMESPACE = uuid.UUID("5e0d4b8c-3f0a-4f45-b1cf-8a4a2bd6a3a1")
"""Where our WFP object keys are derived (ours alone)."""

LAYERS = ("ALE_AUTH_CONNECT_V4", "ALE_AUTH_CONNECT_V6", "ALE_AUTH_RECV_ACCEPT_V4", "ALE_AUTH_RECV_ACCEPT_V6")
OUT = LAYERS[:2]
IN = LAYERS[2:]
V4 = (LAYERS[0], LAYERS[2])
V6 = (LAYERS[1], LAYERS[3])

UDP = 17
TCP = 6
ICMPV6 = 58
FLAG_IS_LOOPBACK = 0x00000001
"""``FWP_CONDITION_FLAG_IS_LOOPBACK``."""

WEIGHT_DNS_PERMIT = 15
WEIGHT_DNS_BLOCK = 14
WEIGHT_LOOPBACK = 13
WEIGHT_PERMIT = 12
WEIGHT_BLOCK_ALL = 0
SUBLAYER_WEIGHT = 0xFFFF


def key(*parts: str) -> str:
    """The key of our object named by ``parts``: stable across runs and versions."""
    return str(uuid.uuid5(NAMESPACE, "/".join(parts)))


@dataclass(frozen=True)
class Condition:
    """One ``FWPM_FILTER_CONDITION0``: ``field`` (``FWPM_CONDITION_*`` without the prefix), ``match``
    (``equal`` or ``flags_all_set``), ``kind`` (how the value is carried: ``uint8``, ``uint16``,
    ``uint32``, ``uint64``, ``v4_mask``, ``v6_mask``, ``v4_address``, ``v6_address``, ``app_id``)
    and the value. Conditions on one field are alternatives; on different fields, all must hold."""

    field: str
    kind: str
    value: int | str
    match: str = "equal"


@dataclass(frozen=True)
class Filter:
    key: str
    name: str
    layer: str
    action: str
    weight: int
    conditions: tuple[Condition, ...] = ()
    boot_time: bool = False


@dataclass(frozen=True)
class Plan:
    """Everything one kill switch puts in place, replaced as a whole in one transaction."""

    purpose: str
    """``kill-switch`` (persistent) or ``lockdown`` (persistent and boot-time)."""
    provider_key: str
    sublayer_key: str
    filters: tuple[Filter, ...] = field(default=())

    @property
    def persistent(self) -> bool:
        return self.purpose in ("kill-switch", "lockdown")

    def as_data(self) -> dict[str, Any]:
        """The plan as JSON values (the golden files)."""
        return {
            "purpose": self.purpose,
            "persistent": self.persistent,
            "provider": self.provider_key,
            "sublayer": self.sublayer_key,
            "filters": [
                {
                    "key": f.key,
                    "name": f.name,
                    "layer": f.layer,
                    "action": f.action,
                    "weight": f.weight,
                    **({"boot_time": True} if f.boot_time else {}),
                    "conditions": [[c.field, c.match, c.kind, c.value] for c in f.conditions],
                }
                for f in self.filters
            ],
        }


@dataclass(frozen=True)
class TunnelRules:
    """What one tunnel brings: its interface LUID and its DNS servers."""

    name: str
    luid: int
    dns_servers: tuple[str, ...] = ()


def _filters(
    purpose: str, name: str, layers: Sequence[str], action: str, weight: int, *conditions: Condition
) -> list[Filter]:
    return [
        Filter(key(purpose, name, layer), name, layer, action, weight, tuple(conditions)) for layer in layers
    ]


def _address_condition(address: IPv4Address | IPv6Address) -> Condition:
    if address.version == 4:
        return Condition("IP_REMOTE_ADDRESS", "v4_address", int(address))
    return Condition("IP_REMOTE_ADDRESS", "v6_address", str(address))


def plan(
    purpose: str,
    engine: str,
    tunnels: Sequence[TunnelRules],
    lan: Sequence[str] = (),
) -> Plan:
    """The filters for ``tunnels`` (``engine``: the engine executable's path). Raises `ValueError`
    for a DNS server or LAN range that is not an address or network."""
    if purpose not in ("kill-switch", "lockdown"):
        raise ValueError(f"unknown purpose {purpose!r}")
    p = purpose
    udp = Condition("IP_PROTOCOL", "uint8", UDP)
    filters: list[Filter] = []

    dns = (udp, Condition("IP_PROTOCOL", "uint8", TCP), Condition("IP_REMOTE_PORT", "uint16", 53))
    for tunnel in sorted(tunnels, key=lambda t: t.name):
        through = Condition("IP_LOCAL_INTERFACE", "uint64", tunnel.luid)
        servers = sorted({ip_address(s) for s in tunnel.dns_servers}, key=lambda a: (a.version, a))
        for layers, version in ((OUT[:1], 4), (OUT[1:], 6)):
            chosen = [_address_condition(a) for a in servers if a.version == version]
            if servers and not chosen:
                continue  # this family's DNS stays blocked
            filters += _filters(
                p, f"permit DNS through tunnel {tunnel.name}", layers, "permit", WEIGHT_DNS_PERMIT,
                *dns, through, *chosen,
            )  # fmt: skip
    filters += _filters(p, "block DNS elsewhere", OUT, "block", WEIGHT_DNS_BLOCK, *dns)
    filters += _filters(
        p, "permit loopback", LAYERS, "permit", WEIGHT_LOOPBACK,
        Condition("FLAGS", "uint32", FLAG_IS_LOOPBACK, "flags_all_set"),
    )  # fmt: skip
    filters += _filters(
        p, "permit the engine", LAYERS, "permit", WEIGHT_PERMIT, Condition("ALE_APP_ID", "app_id", engine)
    )
    for tunnel in sorted(tunnels, key=lambda t: t.name):
        filters += _filters(
            p, f"permit tunnel {tunnel.name}", LAYERS, "permit", WEIGHT_PERMIT,
            Condition("IP_LOCAL_INTERFACE", "uint64", tunnel.luid),
        )  # fmt: skip
    filters += _filters(
        p, "permit DHCP", V4, "permit", WEIGHT_PERMIT,
        udp, Condition("IP_LOCAL_PORT", "uint16", 68), Condition("IP_REMOTE_PORT", "uint16", 67),
    )  # fmt: skip
    filters += _filters(
        p, "permit DHCPv6", V6, "permit", WEIGHT_PERMIT,
        udp, Condition("IP_LOCAL_PORT", "uint16", 546), Condition("IP_REMOTE_PORT", "uint16", 547),
    )  # fmt: skip
    icmp6 = Condition("IP_PROTOCOL", "uint8", ICMPV6)
    filters += _filters(
        p, "permit neighbour discovery out", OUT[1:], "permit", WEIGHT_PERMIT,
        icmp6, *(Condition("ICMP_TYPE", "uint16", t) for t in (133, 135, 136)),
    )  # fmt: skip
    filters += _filters(
        p, "permit neighbour discovery in", IN[1:], "permit", WEIGHT_PERMIT,
        icmp6, *(Condition("ICMP_TYPE", "uint16", t) for t in (134, 135, 136, 137)),
        Condition("IP_REMOTE_ADDRESS", "v6_mask", "fe80::/10"),
    )  # fmt: skip
    for network in sorted({ip_network(n) for n in lan}, key=lambda n: (n.version, n)):
        lan_layers = V4 if network.version == 4 else V6
        kind = "v4_mask" if network.version == 4 else "v6_mask"
        filters += _filters(
            p, f"permit LAN {network}", lan_layers, "permit", WEIGHT_PERMIT,
            Condition("IP_REMOTE_ADDRESS", kind, str(network)),
        )  # fmt: skip
    filters += _filters(p, "block everything else", LAYERS, "block", WEIGHT_BLOCK_ALL)
    if purpose == "lockdown":
        loopback = Condition("FLAGS", "uint32", FLAG_IS_LOOPBACK, "flags_all_set")
        for name, action, weight, conditions in (
            ("boot: permit loopback", "permit", WEIGHT_LOOPBACK, (loopback,)),
            ("boot: block everything", "block", WEIGHT_BLOCK_ALL, ()),
        ):
            filters += [
                Filter(key(p, name, layer), name, layer, action, weight, conditions, boot_time=True)
                for layer in LAYERS
            ]
    return Plan(purpose, key(p, "provider"), key(p, "sublayer"), tuple(filters))
