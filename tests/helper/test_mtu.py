"""MTU black holes: the router drops outer WireGuard datagrams above N bytes without an ICMP error, so
the handshake and small pings pass while full-size TCP stalls. ``probe_mtu`` finds the largest inner
packet that crosses, ``apply`` lowers the tunnel's MTU to it, and TCP completes again (real helper,
both engines, a wireguard-go server; tests/helper/lab.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.helper.lab import (
    ENGINES,
    NFT,
    PYTHON,
    ROOT,
    SERVER_PORT,
    SERVER_TUNNEL,
    WGDESK_ENGINE,
    Lab,
    lab,
)
from tests.netns import unique_name, wait_for
from wgdesk.client import HelperError
from wgdesk.config import parse
from wgdesk.helper import mtu
from wgdesk.helper.protocol import ProtocolError, decode_request

T = unique_name("wgm")
WGDESKCTL = str(Path(sys.executable).parent / "wgdeskctl")  # the console script, as installed
BLACK_HOLE = 1400
"""The router forwards outer IP packets of at most this many bytes to or from the server's port."""

# An inner packet of P bytes leaves as: outer IPv4 header 20 + UDP 8 + WireGuard data header 16
# (type, receiver, counter) + plaintext padded to a multiple of 16 + Poly1305 tag 16.
OUTER_IPV4, UDP, WG_HEADER, WG_TAG = 20, 8, 16, 16


def outer_size(inner: int) -> int:
    padded = -(-inner // 16) * 16
    return OUTER_IPV4 + UDP + WG_HEADER + padded + WG_TAG


# The largest inner packet whose outer datagram stays <= BLACK_HOLE: 1400 - 60 = 1340 -> 1328.
EXPECTED = max(p for p in range(1280, 1421) if outer_size(p) <= BLACK_HOLE)


def black_hole(L: Lab, limit: int = BLACK_HOLE) -> None:
    """Silently drop forwarded datagrams to/from the server's port that are longer than ``limit``."""
    # A veth hands a UDP GSO batch (wgdesk-engine sends them) to the router as one skb, which the
    # rule would see as one long packet; a real link carries each segment on its own. With at most
    # one segment per skb the kernel splits batches before the client's veth, as a NIC would.
    L.client.exec("ip", "link", "set", "dev", L.client_if, "gso_max_segs", "1")
    script = (
        "table inet mtuhole {\n"
        " chain passing {\n"
        "  type filter hook forward priority 0; policy accept;\n"
        f"  udp dport {SERVER_PORT} meta length > {limit} counter drop\n"
        f"  udp sport {SERVER_PORT} meta length > {limit} counter drop\n"
        " }\n"
        "}\n"
    )
    subprocess.run(
        ["ip", "netns", "exec", L.router.name, NFT, "-f", "-"], input=script, text=True, check=True
    )


def dropped(L: Lab) -> int:
    out = L.router.exec(NFT, "-j", "list", "table", "inet", "mtuhole").stdout
    return sum(
        e["counter"]["packets"]
        for item in json.loads(out)["nftables"]
        if "rule" in item
        for e in item["rule"]["expr"]
        if "counter" in e
    )


SINK = """
import socket, sys, threading
def drain(c):
    n = 0
    while True:
        b = c.recv(65536)
        if not b:
            break
        n += len(b)
    c.sendall(str(n).encode())
    c.close()
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(4)
print("ready", flush=True)
while True:
    c, _ = s.accept()
    threading.Thread(target=drain, args=(c,), daemon=True).start()
"""

SEND = """
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3]))
s.sendall(b"x" * (1 << 20))
s.shutdown(socket.SHUT_WR)
print(s.recv(64).decode())
"""


def start_sink(L: Lab, port: int) -> subprocess.Popen[bytes]:
    proc = L.server.popen(
        PYTHON, "-I", "-c", SINK, SERVER_TUNNEL[0], str(port), stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
    return proc


def transfer_1mb(L: Lab, port: int, timeout: float = 8.0) -> bool:
    """True when 1 MiB sent over TCP through the tunnel arrived whole within ``timeout``."""
    r = L.client.exec(
        PYTHON, "-I", "-c", SEND, SERVER_TUNNEL[0], str(port), str(timeout), check=False, timeout=timeout + 10
    )
    return r.returncode == 0 and r.stdout.strip() == str(1 << 20)


def link_mtu(L: Lab, ifname: str) -> int:
    value: int = json.loads(L.client.exec("ip", "-j", "link", "show", ifname).stdout)[0]["mtu"]
    return value


def wgdeskctl(h: Any, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [WGDESKCTL, "--socket", str(h.socket), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=ROOT,
    )


# --- pure parts ----------------------------------------------------------------------------------


def test_candidates_are_the_padding_steps_and_the_current_mtu() -> None:
    assert mtu.candidates(1420) == [1280, 1296, 1312, 1328, 1344, 1360, 1376, 1392, 1408, 1420]
    assert mtu.candidates(1280) == [1280]
    assert mtu.candidates(1000) == []


@pytest.mark.parametrize("limit", [1280, 1291, 1340, 1407, 1419, 1420])
def test_search_finds_the_largest_working_size_in_few_probes(limit: int) -> None:
    sizes = mtu.candidates(1420)
    asked: list[int] = []

    def works(size: int) -> bool:
        asked.append(size)
        return size <= limit

    largest, probes = mtu.search(sizes, works)
    assert largest == max(s for s in sizes if s <= limit)
    assert probes == [(s, s <= limit) for s in asked]
    assert len(probes) <= 6


def test_search_says_none_when_not_even_the_smallest_crosses() -> None:
    assert mtu.search(mtu.candidates(1420), lambda s: False) == (None, [(1420, False), (1280, False)])


def test_ping_is_an_absolute_df_ping_bound_to_the_interface() -> None:
    from wgdesk.platforms.linux import network as linux

    assert linux.ping_argv("wg0", "10.0.0.1", 1328) == [
        linux.PING, "-4", "-n", "-q", "-M", "do", "-s", "1300", "-c", "1", "-W", "1", "-I", "wg0", "10.0.0.1",
    ]  # fmt: skip
    assert (
        linux.ping_argv("wg0", "fd00::1", 1328)[linux.ping_argv("wg0", "fd00::1", 1328).index("-s") + 1]
        == "1280"
    )
    assert linux.PING.startswith("/")


def _cfg(dns: str = "", allowed: str = "10.9.0.0/24") -> Any:
    text = "[Interface]\nPrivateKey = yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=\nAddress = 10.9.0.2/32\n"
    if dns:
        text += f"DNS = {dns}\n"
    text += f"[Peer]\nPublicKey = xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=\nAllowedIPs = {allowed}\n"
    return parse(text, "t.conf")


def test_default_target_dns_inside_then_host_route_else_an_actionable_error() -> None:
    assert mtu.default_target(_cfg("1.1.1.1, 10.9.0.53")) == "10.9.0.53"
    assert mtu.default_target(_cfg("1.1.1.1", "10.9.0.0/24, 10.9.0.1/32, fd9::1/128")) == "10.9.0.1"
    assert mtu.default_target(_cfg("", "fd9::/64, fd9::1/128")) == "fd9::1"
    with pytest.raises(mtu.MtuError, match="give a target inside the tunnel"):
        mtu.default_target(_cfg("1.1.1.1"))


def test_target_must_be_an_address_inside_allowed_ips() -> None:
    cfg = _cfg()
    assert mtu.check_target(cfg, "10.9.0.7") == "10.9.0.7"
    for bad, why in [
        ("10.8.0.1", "not inside any peer's AllowedIPs"),
        ("vpn.example.org", "must be an IP address"),
        ("224.0.0.1", "not a unicast address"),
    ]:
        with pytest.raises(mtu.MtuError, match=why):
            mtu.check_target(cfg, bad)


@pytest.mark.parametrize(
    "args, message",
    [
        ({}, "missing argument 'name'"),
        ({"name": "a", "target": "example.org"}, "target must be an IP address"),
        ({"name": "a", "target": "10.0.0.1\n"}, "target must be an IP address or null"),
        ({"name": "a", "target": 5}, "target must be an IP address or null"),
        ({"name": "a", "apply": "yes"}, "apply must be true, false or null"),
        ({"name": "a", "size": 1400}, "unknown argument 'size'"),
    ],
)
def test_probe_mtu_arguments_are_validated(args: dict[str, Any], message: str) -> None:
    line = json.dumps({"v": 1, "id": 3, "verb": "probe_mtu", "args": args}).encode()
    with pytest.raises(ProtocolError, match=message) as e:
        decode_request(line)
    assert e.value.code == "invalid"
    ok = decode_request(json.dumps({"v": 1, "id": 4, "verb": "probe_mtu", "args": {"name": "a"}}).encode())
    assert ok.args == {"name": "a", "target": None, "apply": None}


# --- through the real helper ---------------------------------------------------------------------


@pytest.mark.root
@pytest.mark.parametrize("engine", sorted(ENGINES))
def test_black_hole_is_found_and_lowering_the_mtu_lets_tcp_through(engine: str) -> None:
    with lab() as L:
        h = L.start_helper(engine=ENGINES[engine])
        before = L.snapshot()
        c = h.client()
        c.up(T, L.config(dns="10.97.0.1"), kill_switch=False)
        mtu_before = link_mtu(L, T)
        assert mtu_before == 1420  # veth 1500 - 80, as wg-quick
        sink = start_sink(L, 5001)
        try:
            # without the black hole 1 MiB crosses (the transfer itself works)
            assert transfer_1mb(L, 5001)
            black_hole(L)
            # positive control: small packets and the handshake still pass, full-size TCP stalls
            assert L.ping(SERVER_TUNNEL[0], 2)
            assert not transfer_1mb(L, 5001, timeout=5)
            assert dropped(L) > 0

            result = c.probe_mtu(T)
            assert result["target"] == "10.97.0.1"  # the DNS server inside AllowedIPs
            assert result["mtu_before"] == 1420
            assert result["largest_working"] == EXPECTED == 1328
            assert result["recommended_mtu"] == 1328
            assert result["applied"] is False
            probes = [tuple(p) for p in result["probes"]]
            assert probes and all(ok == (outer_size(size) <= BLACK_HOLE) for size, ok in probes)
            assert (1328, True) in probes and (1344, False) in probes  # the boundary was asked
            assert 3 <= len(probes) <= 7
            assert link_mtu(L, T) == 1420  # nothing changed without apply
            assert result["tunnel"]["mtu"] == 1420

            # an IPv6 target inside the tunnel sees the same outer limit
            six = c.probe_mtu(T, target=SERVER_TUNNEL[1])
            assert six["target"] == SERVER_TUNNEL[1] and six["largest_working"] == 1328

            applied = c.probe_mtu(T, apply=True)
            assert applied["applied"] is True and applied["recommended_mtu"] == 1328
            assert link_mtu(L, T) == 1328
            assert applied["tunnel"]["mtu"] == 1328 and c.status(T)[0].mtu == 1328
            assert transfer_1mb(L, 5001)  # the same transfer completes now

            again = c.probe_mtu(T, apply=True)  # nothing left to lower
            assert again["mtu_before"] == 1328 and again["largest_working"] == 1328
            assert again["applied"] is False and [tuple(p) for p in again["probes"]] == [(1328, True)]
        finally:
            sink.kill()
            sink.wait()
        journal = (h.state_dir / "journal" / f"{T}.journal").read_text()
        assert '"kind":"mtu"' in journal and '"old":1420' in journal
        c.down(T)
        assert L.snapshot() == before
        log = h.log()
        assert "MTU of" in log and "lowered from 1420 to 1328" in log


@pytest.mark.root
def test_probe_refusals_and_the_cli() -> None:
    with lab() as L:
        h = L.start_helper(engine=WGDESK_ENGINE)
        c = h.client()
        with pytest.raises(HelperError) as e:
            c.probe_mtu(T)
        assert e.value.code == "not_found"
        c.up(T, L.config(), kill_switch=False)  # no DNS, no host route: no default target
        assert "probing the path MTU" not in h.log()  # probe_mtu_on_up is off by default
        with pytest.raises(HelperError, match="give a target inside the tunnel") as e:
            c.probe_mtu(T)
        assert e.value.code == "invalid"
        with pytest.raises(HelperError, match="not inside any peer's AllowedIPs") as e:
            c.probe_mtu(T, target="10.98.2.2")
        assert e.value.code == "invalid"

        # no black hole: the first probe at the interface MTU answers
        r = wgdeskctl(h, "mtu", T, "--target", SERVER_TUNNEL[0])
        assert r.returncode == 0, r.stderr
        assert r.stdout.splitlines() == [
            f"probing {T} to 10.97.0.1 (interface MTU 1420)",
            "  size  result",
            "  1420  ok",
            r.stdout.splitlines()[-1],
        ]
        assert r.stdout.splitlines()[-1].startswith(
            "packets of 1420 bytes cross: the MTU 1420 is fine (1 probes in"
        )

        black_hole(L, 1360)  # 1360 - 60 = 1300 -> 1296 bytes cross
        r = wgdeskctl(h, "mtu", T, "--target", SERVER_TUNNEL[0], "--apply")
        assert r.returncode == 0, r.stderr
        assert "only packets up to 1296 bytes cross, the interface MTU is 1420" in r.stdout
        assert f"MTU of {T} lowered to 1296 until the tunnel goes down" in r.stdout
        assert "  1296  ok" in r.stdout and "  1312  lost" in r.stdout
        assert link_mtu(L, T) == 1296
        assert "  mtu: 1296" in wgdeskctl(h, "show", T).stdout

        r = wgdeskctl(h, "mtu", T, "--target", "10.97.0.99", "--json")  # nobody answers there
        assert r.returncode == 1
        answer = json.loads(r.stdout)
        assert answer["largest_working"] is None and answer["probes"] == [[1296, False], [1280, False]]
        r = wgdeskctl(h, "mtu", T, "--target", "not-an-ip")
        assert r.returncode == 1 and "target must be an IP address" in r.stderr
        c.down(T)
        assert wait_for(lambda: T not in L.client.exec("ip", "link").stdout, 5)


@pytest.mark.root
def test_probe_mtu_on_up_lowers_the_mtu_of_a_black_holed_tunnel_by_itself() -> None:
    with lab() as L:
        h = L.start_helper(engine=WGDESK_ENGINE, settings="probe_mtu_on_up = true\n")
        before = L.snapshot()
        black_hole(L)
        c = h.client()
        assert c.up(T, L.config(dns="10.97.0.1"), kill_switch=False)["mtu"] == 1420
        assert wait_for(lambda: link_mtu(L, T) == EXPECTED, 40), h.log()[-2000:]
        assert c.status(T)[0].mtu == EXPECTED
        assert f"MTU of {T} lowered from 1420 to {EXPECTED}" in h.log()
        c.down(T)
        # a tunnel without a target is left alone, and says why
        c.up(T, L.config(), kill_switch=False)
        assert wait_for(lambda: "MTU probe after bring-up skipped" in h.log(), 10)
        assert link_mtu(L, T) == 1420
        c.down(T)
        assert L.snapshot() == before
