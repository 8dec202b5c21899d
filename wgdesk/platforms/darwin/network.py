"""What a Mac's network is, for the app (no privileges): the network we are on (`route`,
`networksetup`, `arp`), the local networks (`ifconfig`), how an address is routed (`route -n get`),
and a don't-fragment ping through an interface (the MTU probe).

Programs run by absolute path with a clean environment through `wgdesk.platforms.commands.run`.
"""

from __future__ import annotations

import re
from ipaddress import ip_address, ip_network

from wgdesk.platforms.commands import run
from wgdesk.platforms.darwin.ifconfig import parse_ifconfig_all
from wgdesk.platforms.darwin.routes import parse_route_get
from wgdesk.platforms.darwin.runner import CLEAN_ENV, IFCONFIG, ROUTE
from wgdesk.platforms.interface import Network
from wgdesk.platforms.network_identity import NetworkIdentity

ARP = "/usr/sbin/arp"
NETWORKSETUP = "/usr/sbin/networksetup"

_AIRPORT = re.compile(r"^Current Wi-Fi Network: (.+)$", re.MULTILINE)
_ARP = re.compile(r" at ([0-9a-fA-F:]+) on ")
_IPV4 = re.compile(r"^\d{1,3}(\.\d{1,3}){3}$")


def current_network() -> NetworkIdentity | None:
    """The network of the IPv4 default route (`route -n get default`): Wi-Fi by the SSID that
    `networksetup -getairportnetwork` reports, else the gateway's MAC address from `arp -n`. A default
    route over a `utun` link (a VPN's) is no network of ours: None. Limits: macOS 14.4 and later report
    the SSID only to apps with Location Services access, so a Wi-Fi network may be known by its gateway's
    MAC address instead; an IPv6-only network is not identified."""
    proc = run([ROUTE, "-n", "get", "default"], CLEAN_ENV, check=False, timeout=5)
    if proc.returncode != 0:
        return None  # "not in table": no default route
    fields = {}
    for line in proc.stdout.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields[key.strip()] = value.strip()
    interface, gateway = fields.get("interface", ""), fields.get("gateway", "")
    if not interface or interface.startswith("utun"):
        return None
    air = run([NETWORKSETUP, "-getairportnetwork", interface], CLEAN_ENV, check=False, timeout=5)
    found = _AIRPORT.search(air.stdout)
    if found:
        return NetworkIdentity.identify("wifi", interface, ssid=found.group(1).strip())
    wifi = "is not a Wi-Fi interface" not in air.stdout + air.stderr
    kind = "wifi" if wifi else "wired" if interface.startswith("en") else "other"
    if not _IPV4.match(gateway):  # "link#5": a point-to-point link without a gateway
        return NetworkIdentity.identify(kind, interface)
    arp = run([ARP, "-n", gateway], CLEAN_ENV, check=False, timeout=5)
    mac = _ARP.search(arp.stdout)
    return NetworkIdentity.identify(kind, interface, gateway, mac.group(1) if mac else None)


PING = "/sbin/ping"
PING6 = "/sbin/ping6"
ICMP_OVERHEAD = {4: 28, 6: 48}
WAIT_MS = 2000
ATTEMPTS = 2


def local_networks_of(text: str) -> list[Network]:
    """The networks of interfaces that are up: no loopback, no point-to-point link (utun, ppp), no
    link-local or single-host prefix."""
    found: list[Network] = []
    for interface in parse_ifconfig_all(text).values():
        flags = interface.flags
        if "UP" not in flags or "LOOPBACK" in flags or "POINTOPOINT" in flags:
            continue
        for address in interface.addresses:
            net = ip_network(address, strict=False)
            if net.is_link_local or net.prefixlen == net.max_prefixlen or net in found:
                continue
            found.append(net)
    return found


def route_of(fields: dict[str, str]) -> dict[str, str] | None:
    """`route -n get`'s fields as `NetworkView.route_to` answers: ``dev``, ``gateway`` (not for a
    directly connected ``link#N``), ``type`` ``local`` for this Mac's own addresses."""
    if "interface" not in fields:
        return None
    route = {"dev": fields["interface"]}
    gateway = fields.get("gateway", "")
    if gateway and not gateway.startswith("link#"):
        route["gateway"] = gateway
    if "LOCAL" in fields.get("flags", "") or fields["interface"].startswith("lo"):
        route["type"] = "local"
    return route


def ping_argv(ifname: str, target: str, packet_size: int) -> list[str]:
    """One echo of ``packet_size`` bytes (IP header included), don't-fragment set (``-D``), the socket
    bound to ``ifname`` (``-b`` for ping, ``-B`` for ping6)."""
    version = ip_address(target).version
    payload = str(packet_size - ICMP_OVERHEAD[version])
    if version == 6:
        return [PING6, "-n", "-q", "-D", "-c", "1", "-s", payload, "-B", ifname, target]
    return [PING, "-n", "-q", "-D", "-c", "1", "-W", str(WAIT_MS), "-s", payload, "-b", ifname, target]


class DarwinNetworkView:
    """The backend's `wgdesk.platforms.interface.NetworkView`."""

    def current_network(self) -> NetworkIdentity | None:
        return current_network()

    def local_networks(self) -> list[Network]:
        return local_networks_of(run([IFCONFIG], CLEAN_ENV, timeout=5).stdout)

    def route_to(self, address: str) -> dict[str, str] | None:
        proc = run([ROUTE, "-n", "get", str(ip_address(address))], CLEAN_ENV, check=False, timeout=5)
        return route_of(parse_route_get(proc.stdout)) if proc.returncode == 0 else None

    def ping(self, ifname: str, target: str, packet_size: int) -> bool:
        argv = ping_argv(ifname, target, packet_size)
        return any(run(argv, CLEAN_ENV, check=False, timeout=10).returncode == 0 for _ in range(ATTEMPTS))
