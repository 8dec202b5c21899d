"""Routes and the policy routing of a full tunnel on Linux (a `wgdesk.platforms.interface.Routing`).

A full tunnel is wg-quick's: the tunnel's default routes live in table FWMARK, and per family two
rules — ``not fwmark FWMARK table FWMARK`` (everything but the engine's own marked UDP uses that
table) and ``table main suppress_prefixlength 0`` (the main table's specific routes still win, its
default route does not). Included apps: ``fwmark MARK table MARK``. IPv4 reverse-path checks must use
the mark for replies restored from conntrack: ``net.ipv4.conf.all.src_valid_mark = 1``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from wgdesk.platforms.errors import PlatformError
from wgdesk.platforms.interface import FullTunnel, MachineSetting, Network, Recorder
from wgdesk.platforms.linux import iproute
from wgdesk.platforms.linux.iproute import RuleAdded, add_rule

SRC_VALID_MARK = "net.ipv4.conf.all.src_valid_mark"


def sysctl_read(key: str) -> str:
    return Path("/proc/sys", *key.split(".")).read_text().strip()


def sysctl_write(key: str, value: str) -> None:
    try:
        Path("/proc/sys", *key.split(".")).write_text(value + "\n")
    except OSError as e:
        raise PlatformError(f"cannot set sysctl {key}={value}: {e.strerror}") from e


class LinuxRouting:
    """Routes through netlink batches, policy rules, the mark sysctl."""

    def add_routes(self, ifname: str, destinations: Sequence[Network], table: str) -> None:
        iproute.routes_add(destinations, ifname, table)

    def delete_routes(self, ifname: str, destinations: Sequence[Network], table: str) -> None:
        iproute.routes_del(destinations, ifname, table)

    def table_in_use(self, table: int) -> bool:
        return iproute.table_in_use(table)

    def mark_in_use(self, mark: int) -> bool:
        return iproute.fwmark_in_use(mark)

    def route_mtu(self, destination: str) -> int | None:
        found = iproute.route_get(destination)
        if found is None:
            return None
        try:
            if "mtu" in found:
                return int(str(found["mtu"]))
            return iproute.link_mtu(str(found["dev"]))
        except (ValueError, KeyError, IndexError, PlatformError):
            return None

    def default_route_mtu(self) -> int | None:
        for dev in iproute.default_route_devices():
            return iproute.link_mtu(dev)
        return None

    def full_tunnel_on(self, tunnel: FullTunnel, record: Recorder) -> None:
        mark = str(tunnel.fwmark)
        for family in sorted(tunnel.families):
            add_rule(RuleAdded(family, ("not", "fwmark", mark, "table", mark)), record)
            add_rule(RuleAdded(family, ("table", "main", "suppress_prefixlength", "0")), record)

    def mark_routing_on(self, mark: int, families: frozenset[int], record: Recorder) -> None:
        for family in sorted(families):
            add_rule(RuleAdded(family, ("fwmark", str(mark), "table", str(mark))), record)

    def mark_settings(self, families: frozenset[int]) -> tuple[MachineSetting, ...]:
        return (MachineSetting(SRC_VALID_MARK, "1"),) if 4 in families else ()

    def read_setting(self, key: str) -> str:
        return sysctl_read(key)

    def write_setting(self, key: str, value: str) -> None:
        sysctl_write(key, value)
