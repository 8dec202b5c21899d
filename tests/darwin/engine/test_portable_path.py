"""The engine's portable path end to end against wireguard-go (issue 15): the real engine loop on a
utun stand-in (`tests.darwin.utun_standin`: a `DarwinTun` over an AF_UNIX datagram socketpair with
macOS's 4-byte address-family header, bridged to a TUN in the test's namespace), and the Linux TUN
forced onto the same portable path (`WGDESK_PORTABLE=1`). Handshake, ping over IPv4 and IPv6 both
ways, TCP (with UDP beside it) both ways, roaming of address and port.

Both run on both data paths (the interop fixtures): the compiled one strips and adds the header in
C (`tun_read`/`tun_write` with ``af_header``), the pure-Python one in `DarwinTun`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import pytest

from tests.interop.test_roaming import _move_address
from tests.interop.wgnet import INNER4, INNER6, OUTER4, Topology, iperf, wait_handshake
from tests.netns import wait_for

pytestmark = pytest.mark.root

STANDIN = (sys.executable, "-m", "tests.darwin.utun_standin")
PORTABLE = {"WGDESK_PORTABLE": "1"}
DEVICES = [
    pytest.param(STANDIN, id="utun-standin"),
    pytest.param((), id="linux-tun-portable"),
]


def _checked(topo: Topology) -> None:
    log = topo.a.log()
    assert "portable I/O" in log, log[:2000]
    assert "dropped a packet with header" not in log, log[-3000:]


@pytest.mark.parametrize("launcher", DEVICES)
@pytest.mark.parametrize(("outer", "initiator"), [("4", 0), ("6", 1)])
def test_handshake_ping_and_tcp_both_ways(
    t1: Callable[..., Topology], launcher: tuple[str, ...], outer: str, initiator: int
) -> None:
    topo = t1("wgdesk", "go", outer=outer, endpoints=(initiator,), env_a=PORTABLE, launcher_a=launcher)
    for side in (initiator, 1 - initiator):
        topo.ping(side, INNER4[1 - side])
        topo.ping(side, INNER6[1 - side])
    wait_handshake(topo.a, topo.b.public)
    wait_handshake(topo.b, topo.a.public)
    for client in (0, 1):
        tcp, udp = (INNER4[1 - client], INNER6[1 - client]) if client == 0 else (INNER6[0], INNER4[0])
        result = iperf(topo, client, tcp, udp, seconds=2, udp_rate="10M")
        assert result["tcp_bytes"] > 500_000, result
        assert result["udp_bytes"] > 500_000, result
    _checked(topo)


@pytest.mark.parametrize("launcher", DEVICES)
@pytest.mark.parametrize("roamer", [pytest.param(0, id="engine-moves"), pytest.param(1, id="go-moves")])
def test_roaming(t1: Callable[..., Topology], launcher: tuple[str, ...], roamer: int) -> None:
    topo = t1("wgdesk", "go", outer="4", endpoints=(0, 1), env_a=PORTABLE, launcher_a=launcher)
    mover, follower = (topo.a, topo.b) if roamer == 0 else (topo.b, topo.a)
    topo.ping(roamer, INNER4[1 - roamer])
    assert follower.peer(mover.public)["endpoint"].startswith(f"{OUTER4[roamer]}:")
    new_addr = f"10.101.0.{21 + roamer}"
    _move_address(topo, roamer, new_addr)
    topo.ping(roamer, INNER4[1 - roamer])
    assert wait_for(lambda: follower.peer(mover.public)["endpoint"].split(":")[0] == new_addr, 5)
    topo.ping(1 - roamer, INNER6[roamer])
    mover.set("listen-port", "51831")
    topo.ping(roamer, INNER6[1 - roamer])
    assert wait_for(lambda: follower.peer(mover.public)["endpoint"] == f"{new_addr}:51831", 5)
    topo.ping(1 - roamer, INNER4[roamer])
    _checked(topo)
