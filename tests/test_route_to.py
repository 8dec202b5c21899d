"""`platforms.route_to()`: the kernel's own answer, in a namespace with a known wg-quick-style route set."""

from __future__ import annotations

import json
import sys

import pytest

from tests.netns import IP, namespaces, unique_name, veth

pytestmark = pytest.mark.root

PYTHON = sys.executable


def route_to(ns, address: str) -> dict[str, str] | None:  # type: ignore[no-untyped-def]
    out = ns.exec(
        PYTHON,
        "-c",
        f"import json; from wgdesk.platforms import route_to; print(json.dumps(route_to({address!r})))",
    ).stdout
    found: dict[str, str] | None = json.loads(out)
    return found


def test_route_to_follows_policy_routing_like_a_full_tunnel() -> None:
    with namespaces("rt", "ru") as (ns, other):
        lan, _ = veth(ns, other, ("192.168.77.10/24",), ("192.168.77.11/24",))
        ns.exec(IP, "route", "add", "default", "via", "192.168.77.11")
        tun = unique_name("tn")
        ns.exec(IP, "tuntap", "add", "dev", tun, "mode", "tun")
        ns.exec(IP, "addr", "add", "10.66.0.2/32", "dev", tun)
        ns.exec(IP, "link", "set", tun, "up")
        # before the full tunnel: the default route via the LAN
        assert route_to(ns, "203.0.113.9") == {
            "dev": lan,
            "gateway": "192.168.77.11",
            "source": "192.168.77.10",
        }
        # wg-quick's full tunnel: default in table 51820, the two rules, a split route in main
        ns.exec(IP, "route", "add", "default", "dev", tun, "table", "51820")
        ns.exec(IP, "rule", "add", "not", "fwmark", "51820", "table", "51820")
        ns.exec(IP, "rule", "add", "table", "main", "suppress_prefixlength", "0")
        ns.exec(IP, "route", "add", "10.20.0.0/16", "dev", tun)
        assert route_to(ns, "203.0.113.9") == {"dev": tun, "source": "10.66.0.2", "table": "51820"}
        assert route_to(ns, "10.20.3.4") == {"dev": tun, "source": "10.66.0.2"}  # main: no "table"
        # the LAN's own route is more specific than a default: it stays on the LAN
        assert route_to(ns, "192.168.77.11") == {"dev": lan, "source": "192.168.77.10"}
        assert route_to(ns, "192.168.77.10") == {
            "dev": "lo",
            "source": "192.168.77.10",
            "table": "local",
            "type": "local",
        }
        # no IPv6 route at all: None, never an exception
        assert route_to(ns, "2001:db8::1") is None
        assert route_to(ns, "not an address") is None
