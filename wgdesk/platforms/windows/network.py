"""The network a Windows machine is on (one PowerShell query); the rest of its network view comes
with issue 16.

Programs run by absolute path through `wgdesk.platforms.commands.run`.
"""

from __future__ import annotations

import json
import os

from wgdesk.platforms.commands import run
from wgdesk.platforms.interface import Network
from wgdesk.platforms.network_identity import NetworkIdentity
from wgdesk.platforms.unsupported import Missing

_SYSTEM_ROOT = os.environ.get("SYSTEMROOT", r"C:\Windows")  # Windows environment names ignore case
POWERSHELL = _SYSTEM_ROOT + r"\System32\WindowsPowerShell\v1.0\powershell.exe"

_WIFI_MEDIUM = 9  # NDIS_PHYSICAL_MEDIUM: NdisPhysicalMediumNative802_11
_ETHERNET_MEDIUM = 14  # NdisPhysicalMedium802_3

# One PowerShell run: the IPv4 default route with the lowest metric whose adapter is no tunnel (Wintun,
# WireGuard), the gateway's neighbour entry, the adapter's medium, the connection profile's name and,
# for Wi-Fi, the SSID `netsh` reports; printed as one JSON object (property names, not localised text).
NETWORK_SCRIPT = r"""
$ErrorActionPreference = 'Stop'
$routes = Get-NetRoute -AddressFamily IPv4 -DestinationPrefix '0.0.0.0/0' -ErrorAction SilentlyContinue |
  Where-Object {
    $d = (Get-NetAdapter -InterfaceIndex $_.InterfaceIndex -ErrorAction SilentlyContinue).InterfaceDescription
    $d -and $d -notmatch 'Wintun|WireGuard'
  } |
  Sort-Object -Property @{ Expression = { $_.RouteMetric + $_.InterfaceMetric } }
$r = $routes | Select-Object -First 1
if ($null -eq $r) { 'null'; exit 0 }
$a = Get-NetAdapter -InterfaceIndex $r.InterfaceIndex
$n = Get-NetNeighbor -InterfaceIndex $r.InterfaceIndex -IPAddress $r.NextHop -ErrorAction SilentlyContinue
$p = Get-NetConnectionProfile -InterfaceIndex $r.InterfaceIndex -ErrorAction SilentlyContinue
$ssid = $null
if ($a.NdisPhysicalMedium -eq 9) {
  $m = netsh wlan show interfaces | Select-String -Pattern '^\s*SSID\s*:\s*(.+)$' | Select-Object -First 1
  if ($m) { $ssid = $m.Matches[0].Groups[1].Value.Trim() }
}
[pscustomobject]@{
  interface = $a.Name; gateway = $r.NextHop; mac = $n.LinkLayerAddress; state = "$($n.State)";
  medium = [int]$a.NdisPhysicalMedium; profile = $p.Name; ssid = $ssid
} | ConvertTo-Json -Compress
"""


def current_network() -> NetworkIdentity | None:
    """The network of the IPv4 default route with the lowest metric (Wintun/WireGuard adapters left
    out): Wi-Fi by its SSID, else the gateway's MAC address from the neighbour cache, labelled with the
    connection profile's name ("Network 2"). Limits: one PowerShell run per call (about half a second of
    CPU); with two Wi-Fi adapters the SSID is the first `netsh` lists; an IPv6-only network is not
    identified."""
    argv = [POWERSHELL, "-NoProfile", "-NonInteractive", "-ExecutionPolicy", "Bypass", "-Command"]
    proc = run([*argv, NETWORK_SCRIPT], dict(os.environ), timeout=20)
    found = json.loads(proc.stdout.strip() or "null")
    if not isinstance(found, dict) or not found.get("interface"):
        return None
    interface = str(found["interface"])
    medium = found.get("medium")
    kind = "wifi" if medium == _WIFI_MEDIUM else "wired" if medium == _ETHERNET_MEDIUM else "other"
    gateway = str(found.get("gateway") or "")
    mac = str(found.get("mac") or "")
    if found.get("state") in ("Unreachable", "Incomplete"):
        mac = ""
    return NetworkIdentity.identify(
        kind,
        interface,
        gateway if gateway not in ("", "0.0.0.0") else None,  # 0.0.0.0: on-link, no gateway
        mac or None,
        ssid=found.get("ssid") or None,
        name=found.get("profile") or None,
    )


class WindowsNetworkView(Missing):
    """The backend's `wgdesk.platforms.interface.NetworkView`."""

    def __init__(self) -> None:
        super().__init__("win32")

    def current_network(self) -> NetworkIdentity | None:
        return current_network()

    def local_networks(self) -> list[Network]:
        self.refuse("listing the local networks")

    def route_to(self, address: str) -> dict[str, str] | None:
        self.refuse("asking the kernel for a route")

    def ping(self, ifname: str, target: str, packet_size: int) -> bool:
        self.refuse("probing the path MTU")
