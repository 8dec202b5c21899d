"""Scenario 5 (TESTING.md §4): a client behind NAT stays reachable thanks to persistent keepalive.

T2: client ── router (nft masquerade, conntrack UDP timeout 2 s) ── server. The server has no route
back to the client's network and no endpoint for it: it can only answer through the NAT mapping.
A negative control first shows that without keepalive the mapping expires and the server can no
longer reach the client; then keepalive 1 s keeps it open.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.interop.wgnet import WgInterface
from tests.netns import IP, Namespace, namespaces, veth, wait_for

pytestmark = pytest.mark.root

CLIENT_INNER, SERVER_INNER = "10.202.0.2", "10.202.0.1"
CONNTRACK_TIMEOUT = 2


@pytest.fixture
def t2() -> Iterator[tuple[Namespace, Namespace, Namespace]]:
    with namespaces("wc", "wr", "ws") as (client, router, server):
        veth(client, router, ("10.102.0.2/24",), ("10.102.0.1/24",))
        r_out, _ = veth(router, server, ("10.101.0.1/24",), ("10.101.0.2/24",))
        client.exec(IP, "route", "add", "default", "via", "10.102.0.1")
        router.exec("sysctl", "-qw", "net.ipv4.ip_forward=1")
        router.exec("nft", "add", "table", "ip", "nat")
        router.exec("nft", "add", "chain", "ip", "nat", "post", "{ type nat hook postrouting priority 100; }")
        router.exec("nft", "add", "rule", "ip", "nat", "post", "oifname", r_out, "masquerade")
        for key in ("nf_conntrack_udp_timeout", "nf_conntrack_udp_timeout_stream"):
            router.exec("sysctl", "-qw", f"net.netfilter.{key}={CONNTRACK_TIMEOUT}")
        yield client, router, server


def _ping(ns: Namespace, addr: str, count: int = 2) -> bool:
    return ns.exec("ping", "-n", "-c", str(count), "-i", "0.3", "-W", "1", addr, check=False).returncode == 0


@pytest.mark.parametrize(
    ("client_impl", "server_impl"),
    [pytest.param("wgdesk", "go", id="wgdesk-behind-nat"), pytest.param("go", "wgdesk", id="wgdesk-serves")],
)
def test_keepalive_holds_the_nat_mapping(
    t2: tuple[Namespace, Namespace, Namespace], tmp_path: Path, client_impl: str, server_impl: str
) -> None:
    client_ns, _, server_ns = t2
    client = WgInterface(client_ns, client_impl, tmp_path)
    server = WgInterface(server_ns, server_impl, tmp_path)
    server.set(
        "private-key",
        str(server.key_file),
        "listen-port",
        "51820",
        "peer",
        client.public,
        "allowed-ips",
        f"{CLIENT_INNER}/32",
    )
    client.set(
        "private-key",
        str(client.key_file),
        "listen-port",
        "51821",
        "peer",
        server.public,
        "allowed-ips",
        f"{SERVER_INNER}/32",
        "endpoint",
        "10.101.0.2:51820",
    )
    for iface, addr in ((client, CLIENT_INNER), (server, SERVER_INNER)):
        iface.address(f"{addr}/24")
        iface.up()

    assert _ping(client_ns, SERVER_INNER)
    assert server.peer(client.public)["endpoint"].startswith("10.101.0.1:")  # the router's address
    # Negative control: no keepalive, the mapping expires, the server cannot reach the client.
    time.sleep(CONNTRACK_TIMEOUT + 2)
    assert not _ping(server_ns, CLIENT_INNER), "the NAT mapping did not expire: the test proves nothing"

    client.set("peer", server.public, "persistent-keepalive", "1")
    assert _ping(client_ns, SERVER_INNER)
    time.sleep(CONNTRACK_TIMEOUT + 3)
    assert _ping(server_ns, CLIENT_INNER, count=3), (client.log()[-2000:], server.log()[-2000:])
    assert client.peer(server.public)["keepalive"] == "1"
    # Keepalives (32-byte messages) kept flowing while nothing else did.
    rx_before = int(server.peer(client.public)["rx"])
    # two keepalives 1 s apart take 1-2 s by design: 8 s leaves a loaded machine room for late timers
    assert wait_for(lambda: int(server.peer(client.public)["rx"]) >= rx_before + 2 * 32, 8)
