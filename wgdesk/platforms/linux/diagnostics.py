"""What the diagnostics bundle collects of a Linux machine's network (no root needed)."""

from __future__ import annotations

from wgdesk.platforms.interface import DiagnosticSource

SOURCES = (
    DiagnosticSource("network/ip-addr.json", "`ip -j addr`: interfaces and addresses", ("ip", "-j", "addr")),
    DiagnosticSource(
        "network/ip-route.json",
        "`ip -j route show table all`: IPv4 routes of all tables",
        ("ip", "-j", "route", "show", "table", "all"),
    ),
    DiagnosticSource(
        "network/ip6-route.json",
        "`ip -j -6 route show table all`: IPv6 routes of all tables",
        ("ip", "-j", "-6", "route", "show", "table", "all"),
    ),
    DiagnosticSource("network/ip-rule.json", "`ip -j rule`: IPv4 policy routing rules", ("ip", "-j", "rule")),
    DiagnosticSource(
        "network/ip6-rule.json", "`ip -j -6 rule`: IPv6 policy routing rules", ("ip", "-j", "-6", "rule")
    ),
    DiagnosticSource(
        "network/resolvectl-status.txt",
        "`resolvectl status`: systemd-resolved's DNS view",
        ("resolvectl", "--no-pager", "status"),
    ),
    DiagnosticSource("network/resolv.conf", "/etc/resolv.conf", path="/etc/resolv.conf"),
)


class LinuxDiagnostics:
    """The backend's `wgdesk.platforms.interface.Diagnostics`."""

    def sources(self) -> tuple[DiagnosticSource, ...]:
        return SOURCES
