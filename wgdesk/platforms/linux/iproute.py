"""Links, addresses, routes and policy rules (rtnetlink).

Links and addresses through pyroute2 (one ``IPRoute`` conversation per step: all of a tunnel's
addresses in one); routes in batches over one netlink socket (`netlink`: pyroute2 encodes the
messages, but its request machinery waits for each answer, which thousands of routes cannot afford).
Policy rules and the route queries stay with ``ip``: a rule is journalled as the ``ip rule`` words
that add it (``not fwmark 51820 table 51820``) since wgdesk 0.1, and a newer helper must delete what
an older one recorded; they are a handful per tunnel, so a process each costs milliseconds.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any

from wgdesk.platforms.errors import PlatformError
from wgdesk.platforms.interface import Network, Recorder
from wgdesk.platforms.linux import netlink
from wgdesk.platforms.linux.programs import IP, command
from wgdesk.platforms.linux.records import REGISTRY, UndoContext
from wgdesk.undo import UndoRecord


def family_flag(net: Network | str) -> str:
    return "-6" if ":" in str(net) else "-4"


# --- links and addresses ---------------------------------------------------------------------------


@contextmanager
def _rtnl(action: str) -> Iterator[Any]:
    """One pyroute2 ``IPRoute`` conversation (its messages wait for each answer: fine for the few
    messages of a link or its addresses; routes, thousands, go through `netlink`). A refusal of the
    kernel becomes a `PlatformError` saying what was refused, as ``ip`` would ("File exists")."""
    from pyroute2 import IPRoute, NetlinkError

    try:
        with IPRoute() as ipr:
            yield ipr
    except NetlinkError as e:
        raise PlatformError(f"cannot {action}: {os.strerror(e.code) if e.code > 0 else e}") from e


def _index(ipr: Any, ifname: str) -> int | None:
    found = ipr.link_lookup(ifname=ifname)
    return int(found[0]) if found else None


def _existing(ipr: Any, ifname: str) -> int:
    index = _index(ipr, ifname)
    if index is None:
        raise PlatformError(f'cannot find device "{ifname}"')
    return index


def link_exists(ifname: str) -> bool:
    with _rtnl(f"look up {ifname}") as ipr:
        return _index(ipr, ifname) is not None


def link_set(ifname: str, up: bool | None = None, mtu: int | None = None) -> None:
    """Set the MTU and then the state of ``ifname`` (as ``ip link set dev IFNAME mtu N up``)."""
    with _rtnl(f"set {ifname}" + (f" mtu {mtu}" if mtu is not None else "")) as ipr:
        index = _existing(ipr, ifname)
        if mtu is not None:
            ipr.link("set", index=index, mtu=mtu)
        if up is not None:
            ipr.link("set", index=index, state="up" if up else "down")


def link_delete(ifname: str) -> None:
    """Delete ``ifname`` if it exists (gone already is not an error)."""
    from pyroute2 import NetlinkError

    with _rtnl(f"delete {ifname}") as ipr:
        index = _index(ipr, ifname)
        if index is not None:
            with suppress(NetlinkError):
                ipr.link("del", index=index)


def addrs_add(ifname: str, addresses: Sequence[str]) -> None:
    """Add ``addresses`` (``A/PREFIX``) to ``ifname`` in one netlink conversation; IPv6 ones without
    duplicate address detection (``nodad``: a tunnel has no neighbours to collide with)."""
    from pyroute2 import NetlinkError

    if not addresses:
        return
    with _rtnl(f"add an address to {ifname}") as ipr:
        index = _existing(ipr, ifname)
        for address in addresses:
            ip, _, prefix = address.partition("/")
            v6 = ":" in ip
            try:
                ipr.addr(
                    "add",
                    index=index,
                    address=ip,
                    prefixlen=int(prefix or (128 if v6 else 32)),
                    flags=IFA_F_NODAD if v6 else 0,
                )
            except NetlinkError as e:
                raise PlatformError(f"cannot add address {address} to {ifname}: {os.strerror(e.code)}") from e


def addrs_del(ifname: str, addresses: Sequence[str]) -> None:
    """Remove ``addresses`` from ``ifname`` (those already gone, or the link, are fine)."""
    from pyroute2 import NetlinkError

    with _rtnl(f"remove an address from {ifname}") as ipr:
        index = _index(ipr, ifname)
        if index is None:
            return
        for address in addresses:
            ip, _, prefix = address.partition("/")
            with suppress(NetlinkError):
                ipr.addr("del", index=index, address=ip, prefixlen=int(prefix or (128 if ":" in ip else 32)))


IFA_F_NODAD = 0x02
"""``linux/if_addr.h``: no duplicate address detection."""


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
    with _rtnl(f"read the MTU of {ifname}") as ipr:
        return int(ipr.link("get", index=_existing(ipr, ifname))[0].get("IFLA_MTU"))


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
