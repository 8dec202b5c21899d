"""The network a Mac is on (`route`, `networksetup`, `arp`); the rest of its network view comes with
issue 15.

Programs run by absolute path with a clean environment through `wgdesk.platforms.commands.run`.
"""

from __future__ import annotations

import re

from wgdesk.platforms.commands import run
from wgdesk.platforms.interface import Network
from wgdesk.platforms.network_identity import NetworkIdentity
from wgdesk.platforms.unsupported import Missing

CLEAN_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"}
ROUTE = "/sbin/route"
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


class DarwinNetworkView(Missing):
    """The backend's `wgdesk.platforms.interface.NetworkView`."""

    def __init__(self) -> None:
        super().__init__("darwin")

    def current_network(self) -> NetworkIdentity | None:
        return current_network()

    def local_networks(self) -> list[Network]:
        self.refuse("listing the local networks")

    def route_to(self, address: str) -> dict[str, str] | None:
        self.refuse("asking the kernel for a route")

    def ping(self, ifname: str, target: str, packet_size: int) -> bool:
        self.refuse("probing the path MTU")
