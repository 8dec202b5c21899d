"""Links, addresses, routes and policy rules (rtnetlink).

Routes go in batches over one netlink socket (`netlink`); links, addresses and rules through ``ip``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from wgdesk.platforms.errors import PlatformError
from wgdesk.platforms.interface import Network, Recorder
from wgdesk.platforms.linux import netlink
from wgdesk.platforms.linux.programs import IP, command
from wgdesk.platforms.linux.records import REGISTRY, UndoContext
from wgdesk.undo import UndoRecord


def family_flag(net: Network | str) -> str:
    return "-6" if ":" in str(net) else "-4"


# --- links and addresses ---------------------------------------------------------------------------


def link_exists(ifname: str) -> bool:
    return command([IP, "link", "show", "dev", ifname], check=False).returncode == 0


def link_set(ifname: str, up: bool | None = None, mtu: int | None = None) -> None:
    argv = [IP, "link", "set", "dev", ifname]
    if mtu is not None:
        argv += ["mtu", str(mtu)]
    if up is not None:
        argv.append("up" if up else "down")
    command(argv)


def link_delete(ifname: str) -> None:
    if link_exists(ifname):
        command([IP, "link", "delete", "dev", ifname], check=False)


def addr_add(ifname: str, address: str) -> None:
    argv = [IP, family_flag(address), "address", "add", address, "dev", ifname]
    if ":" in address:
        argv.append("nodad")
    command(argv)


def addr_del(ifname: str, address: str) -> None:
    command([IP, family_flag(address), "address", "del", address, "dev", ifname], check=False)


def addresses(ifname: str) -> list[str]:
    out = command([IP, "-j", "address", "show", "dev", ifname], check=False).stdout
    result = []
    for link in json.loads(out or "[]"):
        for a in link.get("addr_info", []):
            result.append(f"{a['local']}/{a['prefixlen']}")
    return result


# --- routes ----------------------------------------------------------------------------------------


def routes_add(dsts: Sequence[Network], ifname: str, table: str = "main") -> None:
    """Add routes to ``dsts`` through ``ifname`` in one netlink conversation (`netlink`); raises
    `PlatformError` naming the first route the kernel refused (the others stay: the caller's journal
    lists them all)."""
    try:
        refused = netlink.routes_change(True, dsts, ifname, table)
    except netlink.NetlinkError as e:
        raise PlatformError(str(e)) from e
    if refused:
        raise PlatformError(f"cannot add route {netlink.describe(refused)} via {ifname} (table {table})")


def routes_del(dsts: Sequence[Network], ifname: str, table: str = "main") -> None:
    """Delete routes to ``dsts`` through ``ifname`` (those already gone are fine)."""
    try:
        answers = netlink.routes_change(False, dsts, ifname, table)
    except netlink.NetlinkError as e:
        raise PlatformError(str(e)) from e
    refused = [r for r in answers if r[1] not in netlink.MISSING]
    if refused:
        raise PlatformError(f"cannot delete route {netlink.describe(refused)} via {ifname} (table {table})")


def route_get(destination: str) -> dict[str, object] | None:
    """The kernel's answer to `ip route get DESTINATION` (None: no route)."""
    proc = command([IP, "-j", family_flag(destination), "route", "get", destination], check=False)
    if proc.returncode != 0:
        return None
    try:
        found = json.loads(proc.stdout)[0]
    except (ValueError, IndexError, KeyError):
        return None
    return found if isinstance(found, dict) else None


def link_mtu(ifname: str) -> int:
    links = json.loads(command([IP, "-j", "link", "show", "dev", ifname]).stdout)
    return int(links[0]["mtu"])


def default_route_devices() -> list[str]:
    """The devices of the default routes (any table the kernel lists first), IPv4 first."""
    found = []
    for fam in ("-4", "-6"):
        proc = command([IP, "-j", fam, "route", "show", "default"], check=False)
        try:
            routes = json.loads(proc.stdout or "[]")
        except ValueError:
            continue
        found += [str(r["dev"]) for r in routes if "dev" in r]
    return found


def table_in_use(table: int) -> bool:
    """True if routing table ``table`` has any IPv4 or IPv6 route."""
    for fam in ("-4", "-6"):
        if command([IP, fam, "route", "show", "table", str(table)], check=False).stdout.strip():
            return True
    return False


# --- policy rules ------------------------------------------------------------------------------------


def fwmark_in_use(mark: int) -> bool:
    """True if any policy rule mentions fwmark or table ``mark``."""
    for fam in ("-4", "-6"):
        out = command([IP, fam, "rule", "show"], check=False).stdout
        for line in out.splitlines():
            words = line.replace("/0xffffffff", "").split()
            for i, w in enumerate(words[:-1]):
                if w in ("fwmark", "lookup", "table") and words[i + 1] in (str(mark), hex(mark)):
                    return True
    return False


def rule_add(family: int, spec: Sequence[str]) -> None:
    command([IP, f"-{family}", "rule", "add", *spec])


def rule_del(family: int, spec: Sequence[str]) -> None:
    command([IP, f"-{family}", "rule", "del", *spec], check=False)


def rule_present(family: int, priority: str, action: str) -> bool:
    """Whether a rule of ``priority`` with ``action`` (``prohibit``) exists."""
    out = command([IP, f"-{family}", "rule", "show"], check=False).stdout
    return any(line.split(":", 1)[0] == priority and action in line for line in out.splitlines())


@dataclass(frozen=True)
class RuleAdded(UndoRecord):
    """A policy rule (``ip rule`` words, e.g. ``not fwmark 51820 table 51820``)."""

    kind = "rule"
    family: int
    spec: tuple[str, ...]


def add_rule(record: RuleAdded, journal: Recorder) -> None:
    """Journal and add one rule."""
    journal(record)
    rule_add(record.family, record.spec)


@REGISTRY.undoes(RuleAdded)
def _(record: RuleAdded, context: UndoContext) -> None:
    rule_del(record.family, record.spec)
