"""The failsafe block: lockdown must block, but its nftables table cannot be put in place.

At boot a broken or missing ``nft`` would otherwise let the network come up open while the helper
reports ready. Instead the helper blocks with policy routing — ``ip rule add priority 1 prohibit``
for IPv4 and IPv6 — which needs only rtnetlink: every routed packet is refused (``EACCES``) while
loopback and the machine's own addresses still work (the local table is looked up at priority 0),
and DHCP clients, which use packet sockets, still get an address. Tunnels cannot work through it
either; it stays until the kill-switch table goes in (`TunnelManager._apply_kill_switch`) or
lockdown is turned off, and survives a helper restart like the table would.
"""

from __future__ import annotations

from wgdesk.platforms import current as platform

PRIORITY = "1"
SPEC = ["priority", PRIORITY, "prohibit"]


def active() -> bool:
    """Whether the failsafe rule is in place (for either family)."""
    return any(_present(family) for family in (4, 6))


def _present(family: int) -> bool:
    out = platform.command([platform.IP, f"-{family}", "rule", "show"], check=False).stdout
    return any(line.split(":", 1)[0] == PRIORITY and "prohibit" in line for line in out.splitlines())


def block() -> None:
    """Put the failsafe rule in place for both families (raises `PlatformError` when it cannot)."""
    for family in (4, 6):
        if not _present(family):
            platform.rule_add(family, SPEC)


def unblock() -> None:
    for family in (4, 6):
        while _present(family):
            platform.rule_del(family, SPEC)
            if _present(family):  # a rule we cannot delete: do not spin
                break
