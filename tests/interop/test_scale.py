"""Scenario 11 (TESTING.md §4): thousands of allowed IPs, 50 peers, and a missing interface."""

from __future__ import annotations

import base64
import ipaddress
import os
import socket
from collections.abc import Callable

import pytest

from tests.interop.wgnet import INNER4, INNER6, OUTER4, PORTS, WG, Topology
from tests.netns import socket_path, unique_name

pytestmark = pytest.mark.root

ALLOWED_V4 = 4000
ALLOWED_V6 = 1000
OTHER_PEERS = 49


def _random_key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


def test_thousands_of_allowed_ips_and_fifty_peers(t1: Callable[..., Topology]) -> None:
    topo = t1("wgdesk", "go", outer="4", endpoints=(0, 1))
    wgdesk, go = topo.a, topo.b
    big = [f"{INNER4[1]}/32", f"{INNER6[1]}/128"]
    big += [f"10.{50 + i // 250}.{i % 250}.0/24" for i in range(ALLOWED_V4)]
    big += [f"fd00:{i:x}::/48" for i in range(1, ALLOWED_V6 + 1)]
    others = {_random_key(): f"172.16.{i}.0/24" for i in range(OTHER_PEERS)}
    lines = [
        "[Interface]",
        f"PrivateKey = {wgdesk.private}",
        f"ListenPort = {PORTS[0]}",
        "",
        "[Peer]",
        f"PublicKey = {go.public}",
        f"Endpoint = {OUTER4[1]}:{PORTS[1]}",
        "AllowedIPs = " + ", ".join(big),
        "",
    ]
    for key, net in others.items():
        lines += ["[Peer]", f"PublicKey = {key}", f"AllowedIPs = {net}", ""]
    conf = wgdesk.workdir / "scale.conf"
    conf.write_text("\n".join(lines))
    wgdesk.wg("setconf", wgdesk.name, str(conf), timeout=60)

    dump = wgdesk.dump()
    assert len(dump) == 1 + OTHER_PEERS
    got = {ipaddress.ip_network(n) for n in dump[go.public]["allowed_ips"].split(",")}
    assert got == {ipaddress.ip_network(n) for n in big}
    assert {k: v["allowed_ips"] for k, v in dump.items() if k != go.public} == others
    topo.ping(0, INNER4[1])
    topo.ping(1, INNER6[0])

    # wireguard-go given the same configuration reports the same thing.
    go_conf = go.workdir / "scale-go.conf"
    # (its own key cannot be its peer: the big peer is wgdesk there)
    go_conf.write_text("\n".join(lines).replace(wgdesk.private, go.private).replace(go.public, wgdesk.public))
    go.wg("setconf", go.name, str(go_conf), timeout=60)
    swap = {wgdesk.public: go.public}
    assert {swap.get(k, k): set(v["allowed_ips"].split(",")) for k, v in go.dump().items()} == {
        k: set(v["allowed_ips"].split(",")) for k, v in wgdesk.dump().items()
    }

    # syncconf with half the peers removes exactly the others.
    keep = dict(list(others.items())[:20])
    lines = lines[: lines.index("[Peer]", 5)]
    for key, net in keep.items():
        lines += ["[Peer]", f"PublicKey = {key}", f"AllowedIPs = {net}", ""]
    conf.write_text("\n".join(lines))
    wgdesk.wg("syncconf", wgdesk.name, str(conf), timeout=60)
    assert set(wgdesk.dump()) == set(keep) | {go.public}


def test_missing_interface_fails_cleanly(t1: Callable[..., Topology]) -> None:
    topo = t1("wgdesk", "go")
    missing = unique_name("wg")
    result = topo.na.exec(WG, "show", missing, check=False, timeout=10)
    assert result.returncode == 1
    assert "Unable to access interface" in result.stderr  # the reason depends on the kernel
    # A dead socket left behind (nothing listening) is reported, not hung on.
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(socket_path(missing)))
    dead.close()
    try:
        result = topo.na.exec(WG, "show", missing, check=False, timeout=10)
        assert result.returncode == 1
        assert "Unable to access interface" in result.stderr
    finally:
        socket_path(missing).unlink(missing_ok=True)  # (wg removes sockets that refuse connections)
    # The real interface is unaffected.
    assert topo.a.wg("show", topo.a.name).returncode == 0
