"""The macOS backend's parsers against fixtures (``tests/darwin/fixtures``). Every fixture is
*synthetic* — labelled so in its first line: written from the documented formats, not recorded on a
Mac (there is none here). A recorded output that disagrees is a bug in the fixture and the parser."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest

from wgdesk.platforms.darwin.dns import Resolver, parse_scutil_dns, parse_show
from wgdesk.platforms.darwin.ifconfig import parse_ifconfig, parse_ifconfig_all
from wgdesk.platforms.darwin.network import local_networks_of, ping_argv, route_of
from wgdesk.platforms.darwin.routes import (
    EndpointRoutes,
    original_gateway,
    parse_netstat,
    parse_route_get,
)

FIXTURES = Path(__file__).parent / "fixtures"


def fixture(name: str) -> str:
    lines = (FIXTURES / name).read_text().splitlines(keepends=True)
    assert lines[0].startswith(("# synthetic:", "# recorded:")), f"{name} must say whether it is recorded"
    return "".join(lines[1:])


def test_every_fixture_is_labelled() -> None:
    for path in FIXTURES.iterdir():
        assert path.read_text().startswith(("# synthetic:", "# recorded:")), path.name


def test_route_get() -> None:
    fields = parse_route_get(fixture("route-get-default.txt"))
    assert fields["gateway"] == "192.168.1.1"
    assert fields["interface"] == "en0"
    assert fields["mtu"] == "1500"
    assert parse_route_get(fixture("route-get-none.txt")) == {}


def test_netstat_original_gateway_skips_tunnels_and_links() -> None:
    assert original_gateway(parse_netstat(fixture("netstat-nr-inet.txt"))) == "192.168.1.1"
    assert original_gateway(parse_netstat(fixture("netstat-nr-inet6.txt"))) == "fe80::1%en0"
    assert original_gateway(parse_netstat(fixture("netstat-nr-inet-p2p.txt"))) is None
    entries = parse_netstat(fixture("netstat-nr-inet.txt"))
    assert entries[0].destination == "default" and entries[0].netif == "utun3"
    assert len(entries) == 11


def test_ifconfig() -> None:
    state = parse_ifconfig(fixture("ifconfig-utun.txt"))
    assert state.mtu == 1420
    assert state.addresses == ("10.8.0.2/32", "fd00:8::2/128")  # link-local left out
    with pytest.raises(ValueError):
        parse_ifconfig("garbage")


def test_scutil_show() -> None:
    dns = parse_show(fixture("scutil-show-dns.txt"))
    assert dns == {
        "DomainName": "home.arpa",
        "SearchDomains": ["home.arpa", "lab.example"],
        "ServerAddresses": ["192.168.1.1", "fe80::1%en0"],
        "__CONFIGURATION_ID__": "Default: 0",
    }  # the nested Options dictionary is skipped
    assert parse_show(fixture("scutil-show-missing.txt")) is None
    glob = parse_show(fixture("scutil-show-global.txt"))
    assert glob is not None and glob["PrimaryService"] == "8A2C3F5E-0D41-4C6B-9E3A-1F2B3C4D5E6F"


def test_scutil_dns_resolvers() -> None:
    resolvers = parse_scutil_dns(fixture("scutil-dns.txt"))
    assert resolvers == [
        Resolver(("10.8.0.1", "fd00:8::1"), ("corp.example",), "", "utun7"),
        Resolver((), (), "local", ""),
    ]  # the scoped section is not what unscoped queries use


def test_endpoints_that_need_no_host_route_of_ours() -> None:
    """Loopback, link-local and endpoints that already have a host route (the Mac's own address,
    another tunnel's endpoint) get none: a route wgdesk did not add is never its to delete."""

    def runner(
        argv: Sequence[str], stdin: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        name = "netstat-nr-inet6.txt" if argv[-1] == "inet6" else "netstat-nr-inet.txt"
        return subprocess.CompletedProcess(list(argv), 0, fixture(name), "")

    routes = EndpointRoutes(runner)
    wanted = ["127.0.0.1", "203.0.113.5", "198.51.100.9", "::1", "fe80::1", "2001:db8::5", "198.51.100.9"]
    assert routes.needed(wanted) == ["198.51.100.9", "2001:db8::5"]


def test_ifconfig_all_and_local_networks() -> None:
    text = fixture("ifconfig-all.txt")
    interfaces = parse_ifconfig_all(text)
    assert list(interfaces) == ["lo0", "en0", "en1", "utun3", "bridge100"]
    assert interfaces["en0"].mtu == 1500 and "UP" in interfaces["en0"].flags
    assert interfaces["utun3"].addresses == ("172.16.9.2/24",)
    # up, not loopback or point-to-point, no link-local or single host; en1 is down
    assert [str(n) for n in local_networks_of(text)] == [
        "192.168.1.0/24",
        "2001:db8:1:2::/64",
        "192.168.64.0/24",
    ]


def test_route_to_answers_as_linux_does() -> None:
    assert route_of(parse_route_get(fixture("route-get-default.txt"))) == {
        "dev": "en0",
        "gateway": "192.168.1.1",
    }
    assert route_of({"interface": "en0", "gateway": "link#6", "flags": "<UP,DONE,CLONING>"}) == {"dev": "en0"}
    assert route_of({"interface": "lo0", "flags": "<UP,HOST,DONE,LOCAL>"}) == {"dev": "lo0", "type": "local"}
    assert route_of(parse_route_get(fixture("route-get-none.txt"))) is None


def test_ping_argv_sets_dont_fragment_and_binds_the_interface() -> None:
    assert ping_argv("utun7", "10.8.0.1", 1420) == [
        "/sbin/ping",
        "-n",
        "-q",
        "-D",
        "-c",
        "1",
        "-W",
        "2000",
        "-s",
        "1392",
        "-b",
        "utun7",
        "10.8.0.1",
    ]
    assert ping_argv("utun7", "fd00:8::1", 1420) == [
        "/sbin/ping6",
        "-n",
        "-q",
        "-D",
        "-c",
        "1",
        "-s",
        "1372",
        "-B",
        "utun7",
        "fd00:8::1",
    ]
