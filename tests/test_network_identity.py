"""`platforms.current_network()` on Linux against the real kernel: a namespace whose default route goes
to a gateway (a veth peer with a fixed MAC address) in a second namespace; the detector runs inside the
first namespace in its own process."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from tests.gui import network_lab
from tests.gui.network_lab import switch_gateway, talk_to
from tests.netns import IP, Namespace, namespaces, unique_name, veth

pytestmark = pytest.mark.root

MAC_A = "02:00:5e:00:0a:01"
MAC_B = "02:00:5e:00:0b:02"


def detect(ns: Namespace) -> dict[str, Any] | None:
    found = network_lab.detect(ns)
    return dataclasses.asdict(found) if found else None


def test_the_gateways_mac_identifies_a_wired_network_and_a_new_gateway_is_a_new_network() -> None:
    with namespaces("ni", "nr") as (client, router):
        lan, gw_if = veth(client, router, ("192.168.77.10/24",), ())
        router.exec(IP, "link", "set", "dev", gw_if, "address", MAC_A)
        router.exec(IP, "addr", "add", "192.168.77.1/24", "dev", gw_if)
        assert detect(client) is None  # a link, but no default route: no network
        client.exec(IP, "route", "add", "default", "via", "192.168.77.1")
        assert detect(client) is None  # the gateway's MAC is not known before any traffic
        talk_to(client, "192.168.77.1")
        home = {
            "kind": "wired",
            "key": f"gateway:{MAC_A}",
            "label": f"192.168.77.1 ({MAC_A}) on {lan}",
            "interface": lan,
        }
        assert detect(client) == home
        assert detect(client) == home  # stable while nothing changes

        switch_gateway(client, lan, router, gw_if, MAC_B)
        talk_to(client, "192.168.77.1")
        cafe = detect(client)
        assert cafe is not None and cafe["key"] == f"gateway:{MAC_B}" and cafe["kind"] == "wired"

        switch_gateway(client, lan, router, gw_if, MAC_A)
        talk_to(client, "192.168.77.1")
        assert detect(client) == home  # back home: the same identity as before

        client.exec(IP, "route", "del", "default")
        assert detect(client) is None


def test_tunnels_and_their_policy_tables_do_not_hide_the_network_under_them() -> None:
    with namespaces("ni", "nr") as (client, router):
        lan, gw_if = veth(client, router, ("192.168.77.10/24",), ("192.168.77.1/24",))
        router.exec(IP, "link", "set", "dev", gw_if, "address", MAC_A)
        client.exec(IP, "route", "add", "default", "via", "192.168.77.1", "metric", "100")
        talk_to(client, "192.168.77.1")
        tun = unique_name("tn")
        client.exec(IP, "tuntap", "add", "dev", tun, "mode", "tun")
        client.exec(IP, "addr", "add", "10.66.0.2/32", "dev", tun)
        client.exec(IP, "link", "set", tun, "up")
        # a full tunnel as the helper sets it up: default route in its own table behind policy rules
        client.exec(IP, "route", "add", "default", "dev", tun, "table", "51820")
        client.exec(IP, "rule", "add", "not", "fwmark", "51820", "table", "51820")
        client.exec(IP, "rule", "add", "table", "main", "suppress_prefixlength", "0")
        # and a tunnel's default in the main table itself, preferred by its metric
        client.exec(IP, "route", "add", "default", "dev", tun, "metric", "5")
        found = detect(client)
        assert found is not None and found["key"] == f"gateway:{MAC_A}" and found["interface"] == lan
        # positive control: the same kind of route over a link with a link layer would win
        other, other_gw = veth(client, router, ("192.168.88.10/24",), ("192.168.88.1/24",))
        router.exec(IP, "link", "set", "dev", other_gw, "address", MAC_B)
        client.exec(IP, "route", "add", "default", "via", "192.168.88.1", "metric", "50")
        talk_to(client, "192.168.88.1")
        found = detect(client)
        assert found is not None and found["key"] == f"gateway:{MAC_B}" and found["interface"] == other


def test_an_ipv6_only_network_and_a_link_without_a_gateway() -> None:
    with namespaces("ni", "nr") as (client, router):
        lan, gw_if = veth(client, router, ("fd77::10/64",), ("fd77::1/64",))
        router.exec(IP, "link", "set", "dev", gw_if, "address", MAC_B)
        router.exec(IP, "-6", "addr", "add", "fe80::1/64", "dev", gw_if, "nodad")
        client.exec(IP, "-6", "route", "add", "default", "via", "fe80::1", "dev", lan)
        talk_to(client, f"fe80::1%{lan}")
        found = detect(client)
        assert found == {
            "kind": "wired",
            "key": f"gateway:{MAC_B}",
            "label": f"fe80::1 ({MAC_B}) on {lan}",
            "interface": lan,
        }
        # an IPv4 default route over the link itself (no gateway: point-to-point style) comes first
        client.exec(IP, "addr", "add", "192.168.77.10/24", "dev", lan)
        client.exec(IP, "route", "add", "default", "dev", lan)
        assert detect(client) == {"kind": "wired", "key": f"link:{lan}", "label": lan, "interface": lan}
