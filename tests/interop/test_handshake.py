"""Scenarios 4 and 10 (TESTING.md §4): private-key change at runtime, replayed initiation."""

from __future__ import annotations

import signal
import struct
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.interop.wgnet import INNER4, INNER6, OUTER4, PORTS, Topology, genkey, wait_handshake
from tests.netns import Namespace, wait_for

pytestmark = pytest.mark.root


@pytest.mark.parametrize(
    "changer", [pytest.param(0, id="wgdesk-changes-key"), pytest.param(1, id="go-changes-key")]
)
def test_private_key_change_takes_effect_at_once(t1: Callable[..., Topology], changer: int) -> None:
    topo = t1("wgdesk", "go", outer="4", endpoints=(0, 1))
    sides = (topo.a, topo.b)
    me, other = sides[changer], sides[1 - changer]
    topo.ping(changer, INNER4[1 - changer])
    first = wait_handshake(other, me.public)

    old_public = me.public
    new_private, _ = genkey()
    me.set_private_key(new_private)
    assert me.wg("show", me.name, "public-key").stdout.strip() == me.public != old_public
    # The peer now knows us only by the new key.
    j = changer
    other.set(
        "peer",
        old_public,
        "remove",
        "peer",
        me.public,
        "allowed-ips",
        f"{INNER4[j]}/32,{INNER6[j]}/128",
        "endpoint",
        f"{OUTER4[j]}:{PORTS[j]}",
    )
    time.sleep(1.1)  # latest-handshake has one-second resolution
    started = time.monotonic()
    topo.ping(changer, INNER4[1 - changer], count=1, deadline=3)
    assert time.monotonic() - started < 1.5
    assert int(other.peer(me.public)["handshake"]) > first
    topo.ping(1 - changer, INNER6[changer], count=1, deadline=3)


def _read_pcap_udp_payloads(path: Path) -> list[bytes]:
    """UDP payloads of IPv4 packets in an Ethernet pcap file."""
    data = path.read_bytes()
    magic = struct.unpack_from("<I", data)[0]
    endian = "<" if magic in (0xA1B2C3D4, 0xA1B23C4D) else ">"
    offset = 24
    payloads = []
    while offset + 16 <= len(data):
        _, _, incl, _ = struct.unpack_from(endian + "IIII", data, offset)
        frame = data[offset + 16 : offset + 16 + incl]
        offset += 16 + incl
        ip = frame[14:]
        ihl = (ip[0] & 15) * 4
        payloads.append(ip[ihl + 8 :])
    return payloads


def _nft_counter(ns: Namespace) -> int:
    out = ns.exec("nft", "list", "chain", "inet", "wgt", "out").stdout
    for line in out.splitlines():
        if "counter packets" in line:
            return int(line.split("counter packets")[1].split()[0])
    raise AssertionError(out)


@pytest.mark.parametrize(
    "responder", [pytest.param(0, id="wgdesk-rejects"), pytest.param(1, id="go-rejects")]
)
def test_replayed_initiation_is_rejected(t1: Callable[..., Topology], responder: int) -> None:
    initiator = 1 - responder
    topo = t1("wgdesk", "go", outer="4", endpoints=(initiator,))
    sides, spaces = (topo.a, topo.b), (topo.na, topo.nb)
    resp_if, resp_ns, init_ns = sides[responder], spaces[responder], spaces[initiator]
    # Count handshake responses (UDP length 8 + 92) the responder sends.
    resp_ns.exec("nft", "add", "table", "inet", "wgt")
    resp_ns.exec("nft", "add", "chain", "inet", "wgt", "out", "{ type filter hook output priority 0; }")
    resp_ns.exec(
        "nft",
        "add",
        "rule",
        "inet",
        "wgt",
        "out",
        "udp",
        "sport",
        str(PORTS[responder]),
        "udp",
        "length",
        "100",
        "counter",
    )
    capture = resp_if.workdir / "init.pcap"
    veth = topo.veth[responder]
    tcpdump = resp_ns.popen(
        "tcpdump",
        "--immediate-mode",
        "-n",
        "-U",
        "-i",
        veth,
        "-w",
        str(capture),
        "udp and udp[8] = 1",
        stderr=subprocess.PIPE,
    )
    assert tcpdump.stderr is not None
    assert b"listening" in tcpdump.stderr.readline()
    topo.ping(initiator, INNER4[responder])
    first = wait_handshake(resp_if, sides[initiator].public)
    time.sleep(0.3)
    tcpdump.send_signal(signal.SIGINT)
    tcpdump.wait(10)
    initiations = [p for p in _read_pcap_udp_payloads(capture) if len(p) == 148]
    assert len(initiations) == 1
    assert _nft_counter(resp_ns) == 1
    endpoint = resp_if.peer(sides[initiator].public)["endpoint"]

    # Replay the captured initiation, from the initiator's namespace but another port.
    time.sleep(1.1)
    init_ns.exec(
        "python3",
        "-c",
        "import socket, sys; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM);"
        "[s.sendto(bytes.fromhex(sys.argv[1]), (sys.argv[2], int(sys.argv[3]))) for _ in range(3)]",
        initiations[0].hex(),
        OUTER4[responder],
        str(PORTS[responder]),
    )
    time.sleep(1)
    assert _nft_counter(resp_ns) == 1, "a replayed initiation was answered"
    peer = resp_if.peer(sides[initiator].public)
    assert peer["endpoint"] == endpoint
    assert int(peer["handshake"]) == first
    if resp_if.impl == "wgdesk":
        assert wait_for(lambda: "replayed_initiation" in resp_if.log(), 3), resp_if.log()[-2000:]
    # The session is untouched.
    topo.ping(initiator, INNER4[responder])
    topo.ping(responder, INNER4[initiator])


def test_garbage_datagrams_are_dropped_silently(t1: Callable[..., Topology]) -> None:
    """Random bytes, truncated and oversized messages of every type: no reply, no crash, tunnel unharmed."""
    topo = t1("wgdesk", "go", outer="4", endpoints=(0, 1))
    topo.ping(1, INNER4[0])
    topo.na.exec("nft", "add", "table", "inet", "wgt")
    topo.na.exec("nft", "add", "chain", "inet", "wgt", "out", "{ type filter hook output priority 0; }")
    topo.na.exec("nft", "add", "rule", "inet", "wgt", "out", "udp", "sport", str(PORTS[0]), "counter")
    script = (
        "import os, random, socket, sys\n"
        "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
        "dst = (sys.argv[1], int(sys.argv[2]))\n"
        "rnd = random.Random(1)\n"
        "for i in range(3000):\n"
        "    kind = i % 6\n"
        "    if kind == 0:\n"
        "        data = os.urandom(rnd.randrange(0, 1600))\n"
        "    else:\n"
        "        size = rnd.choice([1, 3, 4, 31, 32, 91, 92, 93, 147, 148, 149, 63, 64, 65, 200, 1500])\n"
        "        data = bytes([kind % 5, 0, 0, 0]) + os.urandom(max(0, size - 4))\n"
        "    s.sendto(data, dst)\n"
    )
    topo.nb.exec("python3", "-c", script, OUTER4[0], str(PORTS[0]))
    time.sleep(0.5)
    assert topo.a.alive()
    assert _nft_counter(topo.na) == 0, "the engine answered garbage"
    topo.ping(0, INNER4[1])
    topo.ping(1, INNER6[0])
    assert "Traceback" not in topo.a.log()
