"""Scenario 6 (TESTING.md §4): an endpoint routed into our own tunnel does not amplify.

Once the peer's endpoint is routed through the WireGuard interface, every datagram the engine sends
comes back through the TUN. Re-encrypting it grows it by 60 bytes per round until it fragments, and
then multiplies: Debian's wireguard-go 0.0.20220316 sends ~170 000 packets/s from a single ping
(measured here). The kernel implementation refuses such sends ("Avoiding routing loop"); wgdesk drops
its own datagrams when they come back from the TUN. Bounded: a handful of packets, almost no CPU.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.interop.wgnet import INNER4, OUTER4, Topology
from tests.netns import IP, wait_for

pytestmark = pytest.mark.root


def _tx_packets(topo: Topology) -> int:
    return int(topo.na.exec("cat", f"/sys/class/net/{topo.a.name}/statistics/tx_packets").stdout)


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100


@pytest.mark.parametrize("established", [True, False], ids=["with-session", "during-handshake"])
def test_endpoint_routed_into_the_tunnel_is_bounded(t1: Callable[..., Topology], established: bool) -> None:
    topo = t1("wgdesk", "go", outer="4", endpoints=(0, 1))
    if established:
        topo.ping(0, INNER4[1])
    topo.a.set("peer", topo.b.public, "allowed-ips", f"{INNER4[1]}/32,{OUTER4[1]}/32")
    topo.na.exec(IP, "route", "add", f"{OUTER4[1]}/32", "dev", topo.a.name)

    pid = topo.a.proc.pid
    cpu0, tx0 = _cpu_seconds(pid), _tx_packets(topo)
    topo.ping(0, INNER4[1], count=5, deadline=3, check=False)
    time.sleep(1)
    sent = _tx_packets(topo) - tx0
    time.sleep(2)
    later = _tx_packets(topo) - tx0 - sent
    cpu = _cpu_seconds(pid) - cpu0
    # Each ping and each datagram sent for it come back once and stop there (plus a little IPv6
    # neighbour chatter); an unbounded loop sends hundreds of thousands.
    assert sent <= 100, f"{sent} packets went into the tunnel: the loop is not bounded"
    assert later <= 10, f"{later} more packets after the pings stopped: the loop goes on"
    assert cpu < 1.0, f"engine used {cpu:.2f} s of CPU in 5 s"
    assert topo.a.alive()
    assert wait_for(lambda: "Avoiding routing loop" in topo.a.log(), 3)
    # Removing the bad route heals the tunnel.
    topo.na.exec(IP, "route", "del", f"{OUTER4[1]}/32", "dev", topo.a.name)
    topo.ping(0, INNER4[1], deadline=10)
