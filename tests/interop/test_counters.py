"""The engine's per-peer counters and the shared rules over them (`wgdesk.causes`), in real situations: the
wgdesk engine initiating to wireguard-go between two namespaces, with a good tunnel, a wrong peer key, a
preshared-key mismatch, a blocked and an unroutable endpoint. Counters are read through the engine's
UAPI socket with the wgdesk-only operation, beside which `wg show` and `wg showconf` keep working."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable

import pytest

from tests.interop.wgnet import INNER4, INNER6, OUTER4, PORTS, Topology, genkey, genpsk
from tests.netns import socket_path, wait_for
from wgdesk import uapi
from wgdesk.causes import evidence, explain_peer
from wgdesk.proto.changes import ConfigurationError, PeerCounters
from wgdesk.snapshots import PeerSnapshot

pytestmark = pytest.mark.root


def _ask(ifname: str, request: str) -> tuple[list[str], int]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(5)
        s.connect(str(socket_path(ifname)))
        s.sendall(request.encode())
        data = b""
        while not (data.endswith(b"\n\n") or data == b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    return uapi.parse_reply(data)


def _peer(ifname: str) -> PeerSnapshot:
    """The engine's only peer, as the helper reports it: `get=1` plus the counters."""
    body, code = _ask(ifname, "get=1\n\n")
    assert code == 0
    [p] = uapi.parse_get([*body, "errno=0", ""]).peers
    body, code = _ask(ifname, uapi.COUNTERS_REQUEST)
    assert code == 0
    _, counters = uapi.parse_counters(body)
    return PeerSnapshot(
        public_key=p.public_key.hex(),
        endpoint=uapi.format_endpoint(p.endpoint) if p.endpoint else None,
        allowed_ips=tuple(str(n) for n in p.allowed_ips),
        latest_handshake=p.last_handshake,
        rx_bytes=p.rx_bytes,
        tx_bytes=p.tx_bytes,
        counters=counters[p.public_key],
    )


def _causes(topo: Topology) -> list[str]:
    engine_log = topo.a.log().splitlines()
    return [c.code for c in explain_peer(evidence(_peer(topo.a.name), engine_log, time.time()))]


def _counters(topo: Topology) -> PeerCounters:
    counters = _peer(topo.a.name).counters
    assert counters is not None
    return counters


def _initiated(topo: Topology, at_least: int = 1) -> PeerCounters:
    topo.ping(0, INNER4[1], count=1, deadline=2, check=False)
    assert wait_for(lambda: _counters(topo).initiations_sent >= at_least, 15), topo.a.log()[-2000:]
    return _counters(topo)


def _repeer(topo: Topology, public: str) -> None:
    """Give the wgdesk side (a) one peer `public` in place of wireguard-go's key."""
    topo.a.set(
        "peer", topo.b.public, "remove",
        "peer", public, "allowed-ips", f"{INNER4[1]}/32,{INNER6[1]}/128",
        "endpoint", f"{OUTER4[1]}:{PORTS[1]}",
    )  # fmt: skip


def test_a_good_tunnel_counts_its_handshake_and_the_rules_find_nothing(t1: Callable[..., Topology]) -> None:
    topo = t1("wgdesk", "go", endpoints=(0,))
    topo.ping(0, INNER4[1])
    counters = _counters(topo)
    assert counters.initiations_sent >= 1 and counters.responses_received >= 1
    assert counters.dropped == {} and counters.cookie_replies_received == 0
    assert _causes(topo) == []
    # the wgdesk operation beside get=1 changes nothing for wg: show and showconf still read the engine
    dump = topo.a.dump()[topo.b.public]
    assert dump["handshake"] != "0" and int(dump["rx"]) > 0
    conf = topo.a.wg("showconf", topo.a.name).stdout
    assert f"PublicKey = {topo.b.public}" in conf and f"Endpoint = {OUTER4[1]}:{PORTS[1]}" in conf
    # wireguard-go, which has no such operation, hangs up without an answer: wg never sends it
    with pytest.raises(ConfigurationError):
        _ask(topo.b.name, uapi.COUNTERS_REQUEST)


def test_a_wrong_peer_key_is_silence(t1: Callable[..., Topology]) -> None:
    """wireguard-go drops an initiation for another key (its mac1 is wrong) without a word: initiations
    go out, nothing comes back, nothing is dropped here."""
    topo = t1("wgdesk", "go", endpoints=(0,))
    _repeer(topo, genkey()[1])
    counters = _initiated(topo)
    time.sleep(1)
    assert _counters(topo).responses_received == 0 and counters.dropped == {}
    assert _causes(topo) == ["silence"]


def test_a_preshared_key_mismatch_is_an_undecryptable_answer(t1: Callable[..., Topology]) -> None:
    topo = t1("wgdesk", "go", endpoints=(0,), psk=True)
    other = topo.a.workdir / "other.psk"
    other.write_text(genpsk() + "\n")
    topo.a.set("peer", topo.b.public, "preshared-key", str(other))
    _initiated(topo)
    undecryptable = lambda: _counters(topo).dropped.get("invalid_handshake", 0)  # noqa: E731
    assert wait_for(lambda: undecryptable() >= 1, 10), topo.a.log()[-2000:]
    assert _counters(topo).responses_received == 0
    assert _causes(topo) == ["psk"]


def test_a_blocked_endpoint_is_silence_and_an_unroutable_one_says_so(t1: Callable[..., Topology]) -> None:
    topo = t1("wgdesk", "go", endpoints=(0,))
    chain = f"chain i {{\n  type filter hook input priority 0;\n  udp dport {PORTS[1]} drop\n }}"
    drop = f"table inet t {{\n {chain}\n}}"
    subprocess.run(topo.nb.argv("nft", "-f", "-"), input=drop, text=True, check=True)
    _initiated(topo)
    assert _counters(topo).responses_received == 0
    assert _causes(topo) == ["silence"]

    # an endpoint no route leads to: the engine's send fails, which the rules read from its log
    topo.a.set("peer", topo.b.public, "endpoint", f"198.51.100.7:{PORTS[1]}")
    topo.ping(0, INNER4[1], count=1, deadline=2, check=False)
    assert wait_for(lambda: "Failed to send" in topo.a.log(), 15), topo.a.log()[-2000:]
    assert _causes(topo) == ["no-route"]
