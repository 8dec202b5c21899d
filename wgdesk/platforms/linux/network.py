"""This machine's network as the app and the helper look at it (no privileges needed): the network
we are on, the local networks, the kernel's route to an address, and DF pings through a tunnel.

These read through ``ip -j`` (JSON) rather than netlink: they run in the unprivileged app, once every
few seconds, and their tests feed recorded ``ip`` output for networks this machine is not on.
"""

from __future__ import annotations

import json
import os
from ipaddress import ip_address, ip_network
from pathlib import Path
from typing import Any

from wgdesk.platforms.interface import Network
from wgdesk.platforms.linux.iproute import family_flag, route_get
from wgdesk.platforms.linux.programs import IP, IW, NMCLI, PING, command
from wgdesk.platforms.network_identity import NetworkIdentity

SYS_CLASS_NET = Path("/sys/class/net")
# wgdesk's engines and wireguard-go run on TUN links, the kernel module on "wireguard" ones
_TUNNEL_KINDS = ("tun", "wireguard")
_NO_ADDRESS = ("FAILED", "INCOMPLETE")
ATTEMPTS = 2
"""Pings per size before it counts as too big (one lost echo is not a black hole)."""
WAIT_SECONDS = 1
"""``ping -W``: seconds to wait for each echo reply."""
ICMP_OVERHEAD = {4: 20 + 8, 6: 40 + 8}
"""IP header + ICMP echo header: ``ping -s`` gives the payload, the packet is this much larger."""


def local_networks() -> list[Network]:
    """The networks of this machine's interfaces that are up: no loopback, no tunnel (a link without a
    link layer, as TUN and WireGuard devices are), no link-local or single-host prefix."""
    out = command([IP, "-j", "address", "show", "up"]).stdout
    found: list[Network] = []
    for link in json.loads(out or "[]"):
        if link.get("link_type") in ("loopback", "none"):
            continue
        for a in link.get("addr_info", []):
            net = ip_network(f"{a['local']}/{a['prefixlen']}", strict=False)
            if net.is_link_local or net.prefixlen == net.max_prefixlen or net in found:
                continue
            found.append(net)
    return found


def route_to(address: str) -> dict[str, str] | None:
    """How the kernel routes a packet to ``address`` (`ip route get`): ``dev``, and when present
    ``gateway``, ``source`` (the preferred source address), ``table`` (absent: main) and ``type``
    (absent: unicast); None when it has no route."""
    found = route_get(address)
    if found is None:
        return None
    names = {"dev": "dev", "gateway": "gateway", "prefsrc": "source", "table": "table", "type": "type"}
    return {mine: str(found[theirs]) for theirs, mine in names.items() if found.get(theirs) is not None}


def current_network() -> NetworkIdentity | None:
    """The network carrying the main table's default route (IPv4 first, lowest metric; routes over TUN or
    WireGuard links and policy tables are left out, so a full tunnel does not hide the network under it).
    Wi-Fi: the SSID from NetworkManager (`nmcli`), else `iw`; otherwise the gateway's MAC address from the
    neighbour table, labelled with NetworkManager's connection name when there is one. None when there is
    no such route, its link is down, or the gateway's MAC is not known yet."""
    links = {
        str(link.get("ifname")): link for link in _json(command([IP, "-j", "-d", "link", "show"]).stdout)
    }
    route = _default_route(links)
    if route is None:
        return None
    dev, gateway = str(route["dev"]), route.get("gateway")
    wireless = (SYS_CLASS_NET / dev / "wireless").exists() or (SYS_CLASS_NET / dev / "phy80211").exists()
    if wireless:
        ssid = _ssid(dev)
        if ssid:
            return NetworkIdentity.identify("wifi", dev, ssid=ssid)
    kind = "wifi" if wireless else "wired" if links[dev].get("link_type") == "ether" else "other"
    mac = _neighbour(str(gateway), dev) if gateway else None
    if gateway and mac is None:
        return None
    return NetworkIdentity.identify(
        kind, dev, str(gateway) if gateway else None, mac, name=_nm_connection(dev)
    )


def _json(text: str) -> list[dict[str, Any]]:
    try:
        found = json.loads(text or "[]")
    except ValueError:
        return []
    return [x for x in found if isinstance(x, dict)] if isinstance(found, list) else []


def _default_route(links: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    for family in ("-4", "-6"):
        proc = command([IP, "-j", family, "route", "show", "default", "table", "main"], check=False)
        usable = []
        for r in _json(proc.stdout):
            link = links.get(str(r.get("dev")))
            flags = r.get("flags") or []
            if link is None or {"linkdown", "dead"} & set(flags) or r.get("type", "unicast") != "unicast":
                continue
            if (link.get("linkinfo") or {}).get("info_kind") in _TUNNEL_KINDS:
                continue
            usable.append(r)
        if usable:
            return min(usable, key=lambda r: int(r.get("metric") or 0))
    return None


def _neighbour(address: str, dev: str) -> str | None:
    """The link-layer address the kernel has for ``address`` on ``dev`` (also a stale one: the gateway
    rarely changes its MAC without the link going down, and a link going down flushes its entries)."""
    proc = command([IP, "-j", "neigh", "show", "to", address, "dev", dev], check=False)
    for entry in _json(proc.stdout):
        if entry.get("lladdr") and not set(entry.get("state") or ()) & set(_NO_ADDRESS):
            return str(entry["lladdr"])
    return None


def _ssid(dev: str) -> str | None:
    """The SSID ``dev`` is associated with: NetworkManager's answer (from its last scan, never a new
    one), else `iw`'s; None when neither knows."""
    if os.access(NMCLI, os.X_OK):
        argv = [NMCLI, "-t", "-f", "ACTIVE,SSID", "device", "wifi", "list", "--rescan", "no", "ifname", dev]
        proc = command(argv, check=False, timeout=5)
        if proc.returncode == 0:
            for line in proc.stdout.splitlines():
                fields = nmcli_fields(line)
                if len(fields) == 2 and fields[0] == "yes" and fields[1]:
                    return fields[1]
    if os.access(IW, os.X_OK):
        proc = command([IW, "dev", dev, "link"], check=False, timeout=5)
        for line in proc.stdout.splitlines():
            if line.lstrip().startswith("SSID: "):
                return iw_unescape(line.lstrip()[len("SSID: ") :])
    return None


def _nm_connection(dev: str) -> str | None:
    """NetworkManager's name for the connection active on ``dev`` ("Wired connection 1"), if it runs."""
    if not os.access(NMCLI, os.X_OK):
        return None
    argv = [NMCLI, "--escape", "no", "--get-values", "GENERAL.CONNECTION", "device", "show", dev]
    proc = command(argv, check=False, timeout=5)
    name = proc.stdout.strip() if proc.returncode == 0 else ""
    return name if name and name != "--" else None


def nmcli_fields(line: str) -> list[str]:
    """One line of `nmcli -t` output split into its fields (``\\:`` is a colon inside a field,
    ``\\\\`` a backslash)."""
    fields, current, escaped = [], [], False
    for ch in line:
        if escaped:
            current.append(ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == ":":
            fields.append("".join(current))
            current = []
        else:
            current.append(ch)
    fields.append("".join(current))
    return fields


def iw_unescape(text: str) -> str:
    """An SSID as `iw` prints it (bytes that are not printable, a backslash, and leading or trailing
    spaces as ``\\xNN``) back to text (UTF-8; bytes that are not become U+FFFD)."""
    raw, i = bytearray(), 0
    while i < len(text):
        if text.startswith("\\x", i) and len(text) >= i + 4:
            try:
                raw.append(int(text[i + 2 : i + 4], 16))
                i += 4
                continue
            except ValueError:
                pass
        raw.extend(text[i].encode())
        i += 1
    return raw.decode("utf-8", errors="replace")


def ping_argv(ifname: str, target: str, packet_size: int) -> list[str]:
    """The ping that sends one echo of ``packet_size`` bytes (IP header included) with DF set."""
    version = ip_address(target).version
    payload = packet_size - ICMP_OVERHEAD[version]
    return [
        PING,
        family_flag(target),
        "-n",
        "-q",
        "-M",
        "do",
        "-s",
        str(payload),
        "-c",
        "1",
        "-W",
        str(WAIT_SECONDS),
        "-I",
        ifname,
        target,
    ]


def ping(ifname: str, target: str, packet_size: int) -> bool:
    """True when an echo of ``packet_size`` bytes comes back within `ATTEMPTS` tries."""
    argv = ping_argv(ifname, target, packet_size)
    for _ in range(ATTEMPTS):
        proc = command(argv, check=False, timeout=WAIT_SECONDS + 5)
        if proc.returncode == 0:
            return True
    return False


class LinuxNetworkView:
    """The backend's `wgdesk.platforms.interface.NetworkView`."""

    def current_network(self) -> NetworkIdentity | None:
        return current_network()

    def local_networks(self) -> list[Network]:
        return local_networks()

    def route_to(self, address: str) -> dict[str, str] | None:
        return route_to(address)

    def ping(self, ifname: str, target: str, packet_size: int) -> bool:
        return ping(ifname, target, packet_size)
