"""Scenarios 2 and 3 (TESTING.md §4): roaming, and the allowed-IPs source filter.

Each runs both ways: wgdesk moves and wireguard-go follows, and the reverse.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.interop.wgnet import INNER4, INNER6, OUTER4, Topology, wait_handshake
from tests.netns import IP, wait_for

pytestmark = pytest.mark.root

ROAMERS = [pytest.param(0, id="wgdesk-moves"), pytest.param(1, id="go-moves")]


def _move_address(topo: Topology, side: int, new: str) -> None:
    ns, veth = (topo.na, topo.veth[0]) if side == 0 else (topo.nb, topo.veth[1])
    current = ns.exec(IP, "-4", "-o", "addr", "show", "dev", veth).stdout.split()
    old = current[current.index("inet") + 1]
    ns.exec(IP, "addr", "del", old, "dev", veth)  # first: deleting a primary drops its secondaries
    ns.exec(IP, "addr", "add", f"{new}/24", "dev", veth)
    me, other = (topo.a, topo.b) if side == 0 else (topo.b, topo.a)
    if me.impl == "go":
        # wireguard-go caches the source address per endpoint ("sticky sockets") and, when that address
        # is gone, fails with ENETUNREACH instead of choosing a new one. Re-setting the endpoint clears
        # the cache; a wgdesk side needs no such help (the kernel picks the source on every send).
        me.set("peer", other.public, "endpoint", me.peer(other.public)["endpoint"])


@pytest.mark.parametrize("roamer", ROAMERS)
def test_roaming_address_and_port(t1: Callable[..., Topology], roamer: int) -> None:
    topo = t1("wgdesk", "go", outer="4", endpoints=(0, 1))
    sides = (topo.a, topo.b)
    mover, follower = sides[roamer], sides[1 - roamer]
    topo.ping(roamer, INNER4[1 - roamer])
    assert follower.peer(mover.public)["endpoint"].startswith(f"{OUTER4[roamer]}:")

    # New source address: the follower learns it from the first authenticated packet.
    new_addr = f"10.101.0.{11 + roamer}"
    _move_address(topo, roamer, new_addr)
    topo.ping(roamer, INNER4[1 - roamer])
    assert wait_for(lambda: follower.peer(mover.public)["endpoint"].split(":")[0] == new_addr, 5), (
        follower.show()
    )
    # …and its own traffic now goes there.
    topo.ping(1 - roamer, INNER6[roamer])

    # New source port.
    mover.set("listen-port", "51830")
    topo.ping(roamer, INNER6[1 - roamer])
    assert wait_for(lambda: follower.peer(mover.public)["endpoint"] == f"{new_addr}:51830", 5), (
        follower.show()
    )
    topo.ping(1 - roamer, INNER4[roamer])


def _rx_packets(topo: Topology, side: int) -> int:
    ns, iface = (topo.na, topo.a) if side == 0 else (topo.nb, topo.b)
    return int(ns.exec("cat", f"/sys/class/net/{iface.name}/statistics/rx_packets").stdout)


@pytest.mark.parametrize("receiver", [pytest.param(0, id="wgdesk-filters"), pytest.param(1, id="go-filters")])
def test_source_not_in_allowed_ips_is_dropped(t1: Callable[..., Topology], receiver: int) -> None:
    topo = t1("wgdesk", "go", outer="4", endpoints=(0, 1))
    sender = 1 - receiver
    sides = (topo.a, topo.b)
    rx_if, tx_if = sides[receiver], sides[sender]
    ns_tx = (topo.na, topo.nb)[sender]

    # Positive control: from the allowed inner address, packets arrive.
    topo.ping(sender, INNER4[receiver])
    wait_handshake(rx_if, tx_if.public)

    # An inner source the receiver does not allow for this peer, sent from a new outer address.
    spoofed = "10.201.0.77"
    ns_tx.exec(IP, "addr", "add", f"{spoofed}/32", "dev", tx_if.name)
    new_outer = f"10.101.0.{21 + sender}"
    _move_address(topo, sender, new_outer)
    before = _rx_packets(topo, receiver)
    result = ns_tx.exec(
        "ping", "-n", "-c", "5", "-i", "0.2", "-W", "1", "-I", spoofed, INNER4[receiver], check=False
    )
    assert result.returncode != 0, result.stdout
    assert " 0 received" in result.stdout
    # None reached the receiver's interface…
    assert _rx_packets(topo, receiver) == before
    # …but the packets were authentic, so the endpoint still followed the sender.
    assert rx_if.peer(tx_if.public)["endpoint"] == f"{new_outer}:{51820 + sender}"
    if rx_if.impl == "wgdesk":
        assert wait_for(lambda: "source_not_allowed" in rx_if.log(), 3), rx_if.log()[-2000:]
    # The allowed source still works.
    topo.ping(sender, INNER4[receiver])
    assert _rx_packets(topo, receiver) > before
