"""The network this machine is on, as every OS backend reports it (`Network.current_network`)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class NetworkIdentity:
    """The network this machine is on: the one that carries the main routing table's default route.

    ``kind`` is ``wifi``, ``wired`` or ``other``; ``key`` is what stays the same each time the machine
    joins that network (``wifi:SSID``, ``gateway:MAC`` — the default gateway's link-layer address —, or
    ``link:NAME`` for a point-to-point link without a gateway); ``label`` is for people (the SSID, the
    connection's name); ``interface`` is the OS's name of the link.
    """

    kind: str
    key: str
    label: str
    interface: str = ""

    @classmethod
    def identify(
        cls,
        kind: str,
        interface: str,
        gateway: str | None = None,
        mac: str | None = None,
        ssid: str | None = None,
        name: str | None = None,
    ) -> NetworkIdentity | None:
        """The identity every OS module derives from what it found on the default route's link: a Wi-Fi
        network by its SSID; else by the gateway's link-layer address ``mac`` (None while that is not
        known); a link without a gateway by the link's name. ``name`` (the OS's name for the connection)
        becomes the label when there is one."""
        if ssid:
            return cls("wifi", f"wifi:{ssid}", ssid, interface)
        if not gateway:
            return cls(kind, f"link:{interface}", name or interface, interface)
        address = normal_mac(mac or "")
        if address is None:
            return None
        return cls(kind, f"gateway:{address}", name or f"{gateway} ({address}) on {interface}", interface)


def normal_mac(text: str) -> str | None:
    """A link-layer address as lower-case, colon-separated, two-digit octets (``0:1b:…`` as macOS's
    ``arp`` prints it and ``00-1B-…`` as Windows does become ``00:1b:…``); None when it is none, or
    all zeros (an entry still being resolved)."""
    octets = text.strip().lower().replace("-", ":").split(":")
    if len(octets) < 6 or any(not 1 <= len(o) <= 2 for o in octets):
        return None
    try:
        values = [int(o, 16) for o in octets]
    except ValueError:
        return None
    if not any(values):
        return None
    return ":".join(f"{v:02x}" for v in values)
