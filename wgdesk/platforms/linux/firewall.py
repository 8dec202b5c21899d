"""The Linux packet filter: the nft scripts of wgdesk and the `Firewall` of the backend.

Tables: the per-tunnel full-tunnel table (``wgdesk-IFNAME``), the shared kill switch
(``wgdesk-killswitch``), and the split-tunnel tables (``wgdesk-bypass-IFNAME``,
``wgdesk-include-IFNAME``, ``wgdesk-include-guard``; applied by `cgroup`). Scripts are built only
from values the helper computed and validated (interface names matching ``^[a-zA-Z0-9_=+.-]{1,15}$``,
integers, parsed networks), never from client text.

When lockdown must block but nft cannot (missing, broken at boot), `LinuxFirewall.block_all` is the
failsafe: ``ip rule add priority 1 prohibit`` for IPv4 and IPv6, which needs only rtnetlink — every
routed packet is refused (``EACCES``) while loopback and the machine's own addresses still work (the
local table is looked up at priority 0), and DHCP clients, which use packet sockets, still get an
address. Tunnels cannot work through it either; it stays until the kill switch goes in or lockdown is
turned off, and survives a helper restart like the table would.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from ipaddress import ip_address, ip_interface

from wgdesk.config import PRIVATE_LAN_RANGES
from wgdesk.platforms.interface import FullTunnel, KillSwitch, KillSwitchMember, Recorder
from wgdesk.platforms.linux import iproute, nft
from wgdesk.platforms.linux.nft import FAMILY, NftTable

KILL_SWITCH_TABLE = "wgdesk-killswitch"
FAILSAFE_PRIORITY = "1"
FAILSAFE_RULE = ("priority", FAILSAFE_PRIORITY, "prohibit")

FORWARD_PRIVATE_RANGES: tuple[str, ...] = (
    *PRIVATE_LAN_RANGES,
    "100.64.0.0/10",
    "224.0.0.0/4",
    "255.255.255.255/32",
    "ff00::/8",
)
"""Destinations that forwarded traffic (containers, VMs) may reach while the kill switch blocks,
whatever ``allow_lan`` says: the local networks, plus RFC 6598 shared address space (overlays and
some container networks use it), multicast, and the limited broadcast address (with br_netfilter,
as Docker loads it, bridged guests' DHCP requests pass the forward hook)."""

_NDP_OUT = (
    "nd-router-solicit, nd-neighbor-solicit, nd-neighbor-advert, mld-listener-report, mld2-listener-report"
)
_NDP_IN = "nd-router-advert, nd-neighbor-solicit, nd-neighbor-advert, nd-redirect, mld-listener-query"


def full_tunnel_table(ifname: str) -> str:
    """Name of the per-tunnel table (``wgdesk-IFNAME``; names nft cannot spell are hex-encoded)."""
    if all(c.isalnum() or c in "_.-" for c in ifname):
        return f"wgdesk-{ifname}"
    return "wgdesk-x" + ifname.encode().hex()


def _q(name: str) -> str:
    return f'"{name}"'


def full_tunnel_script(
    ifname: str, fwmark: int, addresses: Iterable[str], block_ipv6: bool, lan: Sequence[str] = ()
) -> str:
    """wg-quick's full-tunnel rules, re-expressed as one ``inet`` table.

    * packets to a tunnel address arriving on another interface, from a non-local source, are
      dropped before conntrack (CVE-2019-14899 injection);
    * the engine's UDP mark is saved to conntrack and restored on replies, so ``src_valid_mark``
      reverse-path checks pass for the marked socket;
    * with ``block_ipv6`` (the tunnel carries IPv4 only), IPv6 may not leave by another interface
      except link-local/multicast (neighbour discovery) — no native-IPv6 leak. Packets carrying
      the tunnel's mark are exempt: the engine's own, and those of excluded apps (`bypass_script`).
    """
    table = full_tunnel_table(ifname)
    lines = [
        f"table {FAMILY} {table} {{",
        "  chain preraw {",
        "    type filter hook prerouting priority raw; policy accept;",
    ]
    for addr in addresses:
        iface = ip_interface(addr)
        fam = "ip6" if iface.version == 6 else "ip"
        lines.append(f"    iifname != {_q(ifname)} {fam} daddr {iface.ip} fib saddr type != local drop")
    lines += [
        "  }",
        "  chain premangle {",
        "    type filter hook prerouting priority mangle; policy accept;",
        "    meta l4proto udp meta mark set ct mark",
        "  }",
        "  chain postmangle {",
        "    type filter hook postrouting priority mangle; policy accept;",
        f"    meta l4proto udp meta mark {fwmark} ct mark set meta mark",
        "  }",
    ]
    if block_ipv6:
        allowed = ["fe80::/10", "ff00::/8", *[n for n in lan if ":" in n]]
        lines += [
            "  chain output {",
            "    type filter hook output priority filter; policy accept;",
            f'    meta nfproto ipv6 oifname != {{ "lo", {_q(ifname)} }} meta mark != {fwmark}'
            f" ip6 daddr != {{ {', '.join(allowed)} }} reject with icmpx type admin-prohibited",
            "  }",
        ]
    lines.append("}")
    return "\n".join(lines) + "\n"


def kill_switch_script(
    members: Sequence[KillSwitchMember], lan: Sequence[str] = (), bypass_marks: Sequence[int] = ()
) -> str:
    """The whole kill-switch table, replacing any previous one in the same transaction.

    Allowed out: loopback, the tunnel interfaces, UDP carrying an engine's fwmark (only a process
    with CAP_NET_ADMIN can set a mark — an ordinary process sending to the endpoint is not exempt),
    DHCPv4/DHCPv6 and neighbour discovery, and with ``lan`` the fixed private ranges (never DNS).
    Everything else, IPv6 included, is rejected. With no ``members`` (lockdown with no tunnel up)
    only loopback, DHCP, neighbour discovery and ``lan`` are let out.

    Forwarded (containers, VMs, anything this machine routes or NATs): allowed by a tunnel
    interface, replies of connections started from outside (a published port), and to
    `FORWARD_PRIVATE_RANGES` (independent of ``lan``); to any other address it is rejected, so a
    container cannot reach the internet around a failed tunnel.

    ``bypass_marks``: the marks a `bypass_script` gives packets of excluded apps (the user chose
    to exempt them): any such packet may leave, and replies of their connections (conntrack mark)
    may come in.

    Long because it is one nft table read top to bottom, as the kernel evaluates it: split into
    pieces, the order of its rules (which is what makes it safe) would no longer be visible.
    """
    t = KILL_SWITCH_TABLE
    ifaces = ", ".join(_q(m.ifname) for m in members)
    marks = sorted({m.fwmark for m in members if m.fwmark})
    ports = sorted({m.listen_port for m in members if m.listen_port})
    lan4 = [n for n in lan if ":" not in n]
    lan6 = [n for n in lan if ":" in n]
    out = ['    oifname "lo" accept']
    if ifaces:  # nft refuses an empty anonymous set
        out.append(f"    oifname {{ {ifaces} }} accept")
    if marks:
        out.append(f"    meta l4proto udp meta mark {{ {', '.join(map(str, marks))} }} accept")
    bypass = ", ".join(map(str, sorted(set(bypass_marks))))
    if bypass:
        # Linux evaluates the output hook with the interface of the first route lookup (the
        # tunnel), before the bypass table's re-route; this rule covers a kernel that does not.
        out.append(f"    meta mark {{ {bypass} }} accept")
    out += [
        "    udp sport 68 udp dport 67 accept",
        "    meta nfproto ipv6 udp sport 546 udp dport 547 accept",
        f"    icmpv6 type {{ {_NDP_OUT} }} accept",
    ]
    if lan:
        out.append(
            "    meta l4proto { tcp, udp } th dport { 53, 853 } reject with icmpx type admin-prohibited"
        )
        if lan4:
            out.append(f"    ip daddr {{ {', '.join(lan4)} }} accept")
        if lan6:
            out.append(f"    ip6 daddr {{ {', '.join(lan6)} }} accept")
    out.append("    reject with icmpx type admin-prohibited")
    inp = ['    iifname "lo" accept']
    if ifaces:
        inp.append(f"    iifname {{ {ifaces} }} accept")
    if ports:
        inp.append(f"    udp dport {{ {', '.join(map(str, ports))} }} accept")
    if bypass:
        inp.append(f"    ct state {{ established, related }} ct mark {{ {bypass} }} accept")
    inp += [
        "    ct state related meta l4proto { icmp, ipv6-icmp } accept",
        "    udp sport 67 udp dport 68 accept",
        "    meta nfproto ipv6 udp sport 547 udp dport 546 accept",
        f"    icmpv6 type {{ {_NDP_IN} }} accept",
    ]
    if lan4:
        inp.append(f"    ip saddr {{ {', '.join(lan4)} }} accept")
    if lan6:
        inp.append(f"    ip6 saddr {{ {', '.join(lan6)} }} accept")
    private4 = ", ".join(n for n in FORWARD_PRIVATE_RANGES if ":" not in n)
    private6 = ", ".join(n for n in FORWARD_PRIVATE_RANGES if ":" in n)
    fwd = [f"    oifname {{ {ifaces} }} accept"] if ifaces else []
    fwd += [
        "    ct direction reply accept",
        f"    ip daddr {{ {private4} }} accept",
        f"    ip6 daddr {{ {private6} }} accept",
        "    reject with icmpx type admin-prohibited",
    ]
    return _replacing(
        t,
        [
            "  chain output {",
            "    type filter hook output priority filter - 10; policy drop;",
            *out,
            "  }",
            "  chain input {",
            "    type filter hook input priority filter - 10; policy drop;",
            *inp,
            "  }",
            "  chain forward {",
            "    type filter hook forward priority filter - 10; policy accept;",
            *fwd,
            "  }",
        ],
    )


def _replacing(table: str, chains: Sequence[str]) -> str:
    """A script that replaces table ``table`` with ``chains`` in one transaction (creating it empty
    first, so the delete never fails)."""
    return (
        "\n".join(
            [
                f"table {FAMILY} {table} {{}}",
                f"delete table {FAMILY} {table}",
                f"table {FAMILY} {table} {{",
                *chains,
                "}",
            ]
        )
        + "\n"
    )


def bypass_table(ifname: str) -> str:
    """Name of the table that lets excluded apps bypass full tunnel ``ifname``."""
    return full_tunnel_table(ifname).replace("wgdesk-", "wgdesk-bypass-", 1)


def bypass_script(
    ifname: str, cgroup: str, fwmark: int, addresses: Iterable[str], dns_servers: Iterable[str]
) -> str:
    """Rules that send the sockets of cgroup ``cgroup`` (level 1) around full tunnel ``ifname``.

    * output (a ``route`` chain, so the kernel routes again after the mark changes): packets of
      the cgroup get the engine's mark ``fwmark`` — ``ip rule not fwmark M table M`` then sends
      them by the main table, i.e. the physical link — except to the tunnel's DNS servers, which
      the app resolves through; the mark is saved in conntrack;
    * prerouting: replies get the mark back from conntrack (``src_valid_mark`` reverse-path
      checks look up the route with it);
    * postrouting: marked packets with a tunnel address as source (chosen by the first route
      lookup, before the mark) leaving by another interface are masqueraded.

    ``cgroup`` must be a validated name (`settings.CGROUP_NAME`); addresses are parsed here.
    """
    table = bypass_table(ifname)
    group = f'socket cgroupv2 level 1 "{cgroup}"'
    dns4 = [str(ip_address(a)) for a in dns_servers if ip_address(a).version == 4]
    dns6 = [str(ip_address(a)) for a in dns_servers if ip_address(a).version == 6]
    src4 = [str(ip_interface(a).ip) for a in addresses if ip_interface(a).version == 4]
    src6 = [str(ip_interface(a).ip) for a in addresses if ip_interface(a).version == 6]
    mark = f"meta mark set {fwmark} ct mark set {fwmark}"
    out: list[str] = []
    for fam, nfproto, dns in (("ip", "ipv4", dns4), ("ip6", "ipv6", dns6)):
        if dns:
            out.append(f"    {group} {fam} daddr != {{ {', '.join(dns)} }} {mark}")
        else:
            out.append(f"    {group} meta nfproto {nfproto} {mark}")
    nat: list[str] = []
    for fam, src in (("ip", src4), ("ip6", src6)):
        if src:
            saddr = f"{fam} saddr {{ {', '.join(src)} }}"
            nat.append(f"    meta mark {fwmark} oifname != {_q(ifname)} {saddr} masquerade")
    return (
        "\n".join(
            [
                f"table {FAMILY} {table} {{",
                "  chain output {",
                "    type route hook output priority mangle; policy accept;",
                *out,
                "  }",
                "  chain prerouting {",
                "    type filter hook prerouting priority mangle; policy accept;",
                f"    ct mark {fwmark} meta mark set ct mark",
                "  }",
                "  chain postrouting {",
                "    type nat hook postrouting priority srcnat; policy accept;",
                *nat,
                "  }",
                "}",
            ]
        )
        + "\n"
    )


def include_table(ifname: str) -> str:
    """Name of the table that sends included apps only through tunnel ``ifname``."""
    return full_tunnel_table(ifname).replace("wgdesk-", "wgdesk-include-", 1)


def include_script(
    ifname: str, cgroup: str, mark: int, families: Iterable[int], owner: int | None = None
) -> str:
    """Rules that send the sockets of cgroup ``cgroup`` (level 1) only through tunnel ``ifname``
    (up with full tunnel off; its peers allow the default route of ``families``).

    * output (a ``route`` chain: the kernel routes again after the mark changes): packets of the
      cgroup get ``mark``, saved in conntrack; ``ip rule fwmark MARK table MARK`` (the tunnel's
      default routes) then sends them into the tunnel; local destinations stay local (the local
      table is looked up first). With ``owner`` (the tunnel's uid) only sockets of that user are
      marked: another user's included apps are not sent through this user's tunnel (the
      `include_guard_script` blocks them instead);
    * prerouting: replies get the mark back from conntrack (``src_valid_mark`` reverse-path checks);
    * postrouting (nat): marked packets leaving by the tunnel are masqueraded to the tunnel address
      (their source was picked by the main table, before the mark);
    * postrouting (filter): the leak guard — a marked packet leaving by any interface other than
      the tunnel and loopback (tunnel gone, route gone) is dropped, so included apps never go out
      in the clear. Families the tunnel does not carry are dropped too.

    ``cgroup`` must be a validated name (`settings.CGROUP_NAME`).
    """
    table = include_table(ifname)
    group = f'socket cgroupv2 level 1 "{cgroup}"'
    whose = f" meta skuid {int(owner)}" if owner else ""
    return (
        "\n".join(
            [
                f"table {FAMILY} {table} {{",
                "  chain output {",
                "    type route hook output priority mangle; policy accept;",
                f"    {group}{whose} meta mark set {mark} ct mark set {mark}",
                "  }",
                "  chain prerouting {",
                "    type filter hook prerouting priority mangle; policy accept;",
                f"    ct mark {mark} meta mark set ct mark",
                "  }",
                "  chain nat {",
                "    type nat hook postrouting priority srcnat; policy accept;",
                f"    meta mark {mark} oifname {_q(ifname)} masquerade",
                "  }",
                "  chain guard {",
                "    type filter hook postrouting priority filter; policy accept;",
                f'    meta mark {mark} oifname != {{ "lo", {_q(ifname)} }} counter drop',
                *[
                    f'    meta mark {mark} meta nfproto {nf} oifname != "lo" counter drop'
                    for fam, nf in ((4, "ipv4"), (6, "ipv6"))
                    if fam not in set(families)
                ],
                "  }",
                "}",
            ]
        )
        + "\n"
    )


INCLUDE_GUARD_TABLE = "wgdesk-include-guard"


def include_guard_script(cgroup: str) -> str:
    """The include guard: packets of cgroup ``cgroup`` (level 1) that no tunnel marked (none serves
    included apps, or the serving tunnel is another user's) may go to loopback only. It stays while
    the cgroup has processes — across `down`, a helper restart and crash recovery — so an app
    started with `wgdeskctl include` never gets out around a tunnel; replaced atomically.
    ``cgroup`` must be a validated name (`settings.CGROUP_NAME`)."""
    return _replacing(
        INCLUDE_GUARD_TABLE,
        [
            "  chain output {",
            "    type filter hook output priority filter - 20; policy accept;",
            f'    socket cgroupv2 level 1 "{cgroup}" meta mark 0 oifname != "lo" counter drop',
            "  }",
        ],
    )



class LinuxFirewall:
    """The backend's `wgdesk.platforms.interface.Firewall`: nft tables, and ``ip rule`` as failsafe."""

    def full_tunnel_on(self, tunnel: FullTunnel, record: Recorder) -> None:
        table = full_tunnel_table(tunnel.ifname)
        record(NftTable(FAMILY, table))
        nft.apply(
            full_tunnel_script(
                tunnel.ifname,
                tunnel.fwmark,
                tunnel.addresses,
                block_ipv6=6 not in tunnel.families,
                lan=tunnel.lan,
            )
        )

    def apply_kill_switch(self, kill_switch: KillSwitch) -> None:
        nft.apply(kill_switch_script(kill_switch.members, kill_switch.lan, kill_switch.marks))

    def remove_kill_switch(self) -> None:
        nft.delete_table(FAMILY, KILL_SWITCH_TABLE)

    def kill_switch_present(self) -> bool:
        return nft.table_exists(FAMILY, KILL_SWITCH_TABLE)

    def block_all(self) -> None:
        for family in (4, 6):
            if not iproute.rule_present(family, FAILSAFE_PRIORITY, "prohibit"):
                iproute.rule_add(family, FAILSAFE_RULE)

    def unblock_all(self) -> None:
        for family in (4, 6):
            while iproute.rule_present(family, FAILSAFE_PRIORITY, "prohibit"):
                iproute.rule_del(family, FAILSAFE_RULE)
                if iproute.rule_present(family, FAILSAFE_PRIORITY, "prohibit"):
                    break  # a rule we cannot delete: do not spin

    def blocking_all(self) -> bool:
        return any(iproute.rule_present(family, FAILSAFE_PRIORITY, "prohibit") for family in (4, 6))
