"""Scenario 1 (TESTING.md §4): traffic between wgdesk-engine and wireguard-go over T1.

IPv4 and IPv6 inner addresses, IPv4 and IPv6 outer endpoints, with and without a preshared key,
each side initiating. Only the initiator is told the other's endpoint, so it is the only side
that can start the handshake; the responder must learn the endpoint from the handshake.
The first case runs wireguard-go against itself: it checks the harness, not wgdesk.
"""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Callable

import pytest

from tests.interop.wgnet import INNER4, INNER6, OUTER4, OUTER6, PORTS, Topology, iperf, wait_handshake
from tests.netns import socket_path, wait_for

pytestmark = pytest.mark.root

CASES = [
    # impl a, impl b, outer family, preshared key, initiating side
    pytest.param("go", "go", "4", False, 0, id="harness-go-go"),
    pytest.param("wgdesk", "go", "4", False, 0, id="v4-nopsk-wgdesk-initiates"),
    pytest.param("wgdesk", "go", "6", True, 0, id="v6-psk-wgdesk-initiates"),
    pytest.param("wgdesk", "go", "4", True, 1, id="v4-psk-go-initiates"),
    pytest.param("wgdesk", "go", "6", False, 1, id="v6-nopsk-go-initiates"),
    # wgdesk on both ends: GSO sends meet GRO reads.
    pytest.param("wgdesk", "wgdesk", "6", True, 1, id="wgdesk-wgdesk"),
    # the portable I/O of macOS and Windows (no vnet header, no GSO/GRO), forced on Linux
    pytest.param("wgdesk-portable", "go", "4", False, 0, id="portable-wgdesk-initiates"),
    pytest.param("wgdesk-portable", "wgdesk", "6", True, 1, id="portable-wgdesk-wgdesk"),
]


def _counters_match(topo: Topology) -> bool:
    pa, pb = topo.a.peer(topo.b.public), topo.b.peer(topo.a.public)
    return pa["tx"] == pb["rx"] and pa["rx"] == pb["tx"]


@pytest.mark.parametrize(("impl_a", "impl_b", "outer", "psk", "initiator"), CASES)
def test_ping_and_iperf(
    t1: Callable[..., Topology], impl_a: str, impl_b: str, outer: str, psk: bool, initiator: int
) -> None:
    env_a = {"WGDESK_PORTABLE": "1"} if impl_a == "wgdesk-portable" else None
    impl_a = impl_a.removesuffix("-portable")
    topo = t1(impl_a, impl_b, outer=outer, psk=psk, endpoints=(initiator,), env_a=env_a)
    sides = (topo.a, topo.b)
    me, other = initiator, 1 - initiator
    init_if, resp_if = sides[me], sides[other]

    topo.ping(me, INNER4[other])
    topo.ping(me, INNER6[other])
    topo.ping(other, INNER4[me])
    topo.ping(other, INNER6[me])

    # Both sides report the handshake; the responder learnt the initiator's outer address and port.
    wait_handshake(init_if, resp_if.public)
    wait_handshake(resp_if, init_if.public)
    outer_addr = (OUTER4 if outer == "4" else OUTER6)[me]
    expected = f"[{outer_addr}]:{PORTS[me]}" if ":" in outer_addr else f"{outer_addr}:{PORTS[me]}"
    assert resp_if.peer(init_if.public)["endpoint"] == expected
    assert (init_if.peer(resp_if.public)["psk"] != "(none)") is psk
    assert (resp_if.peer(init_if.public)["psk"] != "(none)") is psk

    # After lossless pings, what one side sent is exactly what the other received.
    assert wait_for(lambda: _counters_match(topo), 3), (topo.a.dump(), topo.b.dump())
    before = resp_if.peer(init_if.public)

    # TCP over one inner family and UDP over the other, at the same time.
    tcp_dst, udp_dst = (INNER4[other], INNER6[other]) if me == 0 else (INNER6[other], INNER4[other])
    result = iperf(topo, me, tcp_dst, udp_dst)
    assert result["tcp_bytes"] > 1_000_000, result
    assert result["udp_bytes"] > 1_000_000, result

    after_resp = resp_if.peer(init_if.public)
    after_init = init_if.peer(resp_if.public)
    received = int(after_resp["rx"]) - int(before["rx"])
    assert received >= result["tcp_bytes"] + result["udp_bytes"] * (1 - result["udp_lost_percent"] / 100)
    # Transfer counters stay consistent under load: nothing counted that was not sent.
    assert int(after_init["tx"]) >= int(after_resp["rx"]) >= 0.75 * int(after_init["tx"]), (
        after_init,
        after_resp,
    )


def _uapi_get(ifname: str) -> str:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.connect(str(socket_path(ifname)))
        s.sendall(b"get=1\n\n")
        data = b""
        while not data.endswith(b"\n\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    return data.decode()


def _uapi_keys(ifname: str) -> list[str]:
    return [line.split("=", 1)[0] for line in _uapi_get(ifname).splitlines() if line]


def _labels(text: str) -> list[str]:
    return [line.split(":", 1)[0].strip() for line in text.splitlines() if ":" in line]


def _conf_keys(text: str) -> list[str]:
    return [line.split("=", 1)[0].strip() for line in text.splitlines() if line.strip()]


def test_wg_show_looks_like_wireguard_go(t1: Callable[..., Topology]) -> None:
    """Same configuration on both sides: `wg show`, `showconf`, dump and UAPI keys match field for field."""
    topo = t1("wgdesk", "go", outer="4", psk=True, endpoints=(0, 1), keepalive=25)
    for iface in (topo.a, topo.b):
        iface.set("fwmark", "0x1234")
    topo.ping(0, INNER4[1])
    wait_handshake(topo.a, topo.b.public)
    wgdesk, go = topo.a, topo.b

    assert _labels(wgdesk.show()) == _labels(go.show())
    assert _conf_keys(wgdesk.wg("showconf", wgdesk.name).stdout) == _conf_keys(
        go.wg("showconf", go.name).stdout
    )
    assert wgdesk.show("fwmark").strip() == go.show("fwmark").strip() == "0x1234"
    assert wgdesk.show("listen-port").strip() == str(PORTS[0])
    dump_w = wgdesk.wg("show", wgdesk.name, "dump").stdout.splitlines()
    dump_g = go.wg("show", go.name, "dump").stdout.splitlines()
    assert [len(line.split("\t")) for line in dump_w] == [len(line.split("\t")) for line in dump_g]
    assert wgdesk.peer(go.public)["keepalive"] == go.peer(wgdesk.public)["keepalive"] == "25"
    assert sorted(set(_uapi_keys(wgdesk.name))) == sorted(set(_uapi_keys(go.name)))
    assert _uapi_keys(wgdesk.name)[-1] == "errno"


def test_configuration_round_trip(t1: Callable[..., Topology], tmp_path: object) -> None:
    """`wg showconf` | `wg setconf` | `wg syncconf` leave a wgdesk interface exactly as configured."""
    topo = t1("wgdesk", "go", outer="6", psk=True, endpoints=(0,), keepalive=7)
    wgdesk = topo.a
    conf = wgdesk.wg("showconf", wgdesk.name).stdout
    path = wgdesk.workdir / "round.conf"
    path.write_text(conf)
    wgdesk.wg("setconf", wgdesk.name, str(path))
    assert wgdesk.wg("showconf", wgdesk.name).stdout == conf
    wgdesk.wg("syncconf", wgdesk.name, str(path))
    assert wgdesk.wg("showconf", wgdesk.name).stdout == conf
    # remove=true through `wg set … remove`, then syncconf brings the peer back.
    wgdesk.set("peer", topo.b.public, "remove")
    assert topo.b.public not in wgdesk.dump()
    wgdesk.wg("syncconf", wgdesk.name, str(path))
    assert wgdesk.wg("showconf", wgdesk.name).stdout == conf
    topo.ping(0, INNER6[1])


def test_get_during_traffic_is_consistent(t1: Callable[..., Topology]) -> None:
    """UAPI `get` answered while the data path is busy: complete replies, counters never go back."""
    topo = t1("wgdesk", "go", outer="4", endpoints=(0, 1))
    topo.ping(0, INNER4[1])
    server = topo.nb.popen("iperf3", "-s", "-1", "-p", "5201", stdout=subprocess.DEVNULL)
    assert wait_for(lambda: "5201" in topo.nb.exec("ss", "-Hltn").stdout, 10)
    client = topo.na.popen("iperf3", "-c", INNER4[1], "-p", "5201", "-t", "3", stdout=subprocess.DEVNULL)
    last = (0, 0)
    replies = 0
    while client.poll() is None:
        keys = dict(
            line.split("=", 1) for line in _uapi_get(topo.a.name).splitlines() if line and "=" in line
        )
        assert keys["errno"] == "0"
        now = (int(keys["rx_bytes"]), int(keys["tx_bytes"]))
        assert now[0] >= last[0] and now[1] >= last[1], (last, now)
        last = now
        replies += 1
    server.wait(10)
    assert client.returncode == 0
    assert replies >= 20
    assert last[1] > 10_000_000  # the replies saw the transfer happen
