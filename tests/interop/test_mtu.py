"""The engine follows its TUN's MTU (TESTING.md §4, scenario 7: padding never exceeds the MTU).

The helper sets the MTU after the engine starts and the MTU probe lowers it later; the engine must pad to
the MTU the link has now, not to the 1420 it started with (wireguard-go follows the link the same way).
"""

from __future__ import annotations

import re
import signal
import subprocess
from collections.abc import Callable

import pytest

from tests.interop.wgnet import INNER4, PORTS, Topology
from tests.netns import wait_for

pytestmark = pytest.mark.root


def outgoing_lengths(topo: Topology, size: int) -> list[int]:
    """UDP payload lengths of the datagrams side a sends while it pings side b with `size` bytes of ICMP
    data (tcpdump on side a's veth, outgoing)."""
    sniff = topo.na.popen(
        "tcpdump", "-i", topo.veth[0], "-n", "-l", "-p", "-Q", "out", f"udp src port {PORTS[0]}",
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert sniff.stderr is not None
    assert any("listening on" in sniff.stderr.readline() for _ in range(3)), "tcpdump did not start"
    topo.na.exec("ping", "-n", "-c", "2", "-i", "0.3", "-W", "2", "-M", "do", "-s", str(size), INNER4[1])
    sniff.send_signal(signal.SIGINT)
    out, _ = sniff.communicate(timeout=10)
    return [int(m) for m in re.findall(r"UDP, length (\d+)", out)]


def test_padding_follows_the_tun_mtu_when_it_changes(t1: Callable[..., Topology]) -> None:
    topo = t1("wgdesk", "go", outer="4", endpoints=(0,))
    topo.ping(0, INNER4[1])
    # 1300 is not a multiple of 16: a full-size packet is padded to the MTU, not to 1312
    topo.na.exec("ip", "link", "set", "dev", topo.a.name, "mtu", "1300")
    assert wait_for(lambda: f"MTU of {topo.a.name} is now 1300" in topo.a.log(), 5), topo.a.log()[-2000:]
    lengths = outgoing_lengths(topo, 1300 - 28)  # IPv4 + ICMP headers: a 1300-byte packet
    assert lengths and all(n == 16 + 1300 + 16 for n in lengths), lengths
    # the control: a packet below the MTU is still padded to a multiple of 16
    lengths = outgoing_lengths(topo, 1290 - 28)
    assert lengths and all(n == 16 + 1296 + 16 for n in lengths), lengths
    # raised again, and back to the usual padding rule near the new limit
    topo.na.exec("ip", "link", "set", "dev", topo.a.name, "mtu", "1500")
    assert wait_for(lambda: f"MTU of {topo.a.name} is now 1500" in topo.a.log(), 5), topo.a.log()[-2000:]
    lengths = outgoing_lengths(topo, 1470 - 28)
    assert lengths and all(n == 16 + 1472 + 16 for n in lengths), lengths
