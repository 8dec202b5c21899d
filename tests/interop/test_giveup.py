"""Scenario 9 (TESTING.md §4): retransmit and give up.

The peer is blackholed (its namespace drops our UDP). One packet to send makes the engine try 20
handshake initiations, Rekey-Timeout (5 s + up to 333 ms jitter) apart, then stop until new traffic.
The engine's test knob WGDESK_TIME_SCALE=10 runs its protocol clock ten times faster (90 s → 9 s);
the kernel, the network and the peer see real time.
"""

from __future__ import annotations

import itertools
import signal
import subprocess
import time
from collections.abc import Callable

import pytest

from tests.interop.wgnet import INNER4, PORTS, Topology
from tests.netns import Namespace, wait_for

pytestmark = pytest.mark.root

SCALE = 10.0


def _initiations(ns: Namespace) -> int:
    out = ns.exec("nft", "list", "chain", "inet", "hole", "in").stdout
    for line in out.splitlines():
        if "counter packets" in line:
            return int(line.split("counter packets")[1].split()[0])
    raise AssertionError(out)


def test_twenty_initiations_then_silence(t1: Callable[..., Topology]) -> None:
    topo = t1("wgdesk", "go", outer="4", endpoints=(0,), env_a={"WGDESK_TIME_SCALE": str(SCALE)})
    nb = topo.nb
    nb.exec("nft", "add", "table", "inet", "hole")
    nb.exec("nft", "add", "chain", "inet", "hole", "in", "{ type filter hook input priority -10; }")
    # Initiations are 148 bytes: UDP length 156. Everything else to the peer is dropped too.
    nb.exec(
        "nft",
        "add",
        "rule",
        "inet",
        "hole",
        "in",
        "udp",
        "dport",
        str(PORTS[1]),
        "udp",
        "length",
        "156",
        "counter",
        "drop",
    )
    nb.exec("nft", "add", "rule", "inet", "hole", "in", "udp", "dport", str(PORTS[1]), "drop")

    # The gaps come from the kernel's receive timestamps (tcpdump -tt on the peer's veth), not from when
    # a poller saw the counter change: scaled ten times, 0.2 s of scheduling delay on a loaded machine
    # would otherwise look like a 2 s error.
    sniff = topo.nb.popen(
        "tcpdump", "-i", topo.veth[1], "-n", "-tt", "-l", "-p", "-Q", "in",
        f"udp dst port {PORTS[1]} and udp[4:2] = 156",
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert sniff.stderr is not None
    assert any("listening on" in sniff.stderr.readline() for _ in range(3)), "tcpdump did not start"
    topo.na.popen("ping", "-n", "-c", "1", "-w", "1", INNER4[1], stdout=subprocess.DEVNULL)
    seen: list[tuple[float, int]] = []
    deadline = time.monotonic() + 100 / SCALE + 5
    while time.monotonic() < deadline:
        n = _initiations(nb)
        if not seen or n != seen[-1][1]:
            seen.append((time.monotonic(), n))
        if n >= 20:
            break
        time.sleep(0.03)
    assert seen[-1][1] == 20, seen
    time.sleep(0.5)
    sniff.send_signal(signal.SIGINT)
    out, _ = sniff.communicate(timeout=10)
    stamps = [float(line.split()[0]) for line in out.splitlines() if line.strip()]
    assert len(stamps) == 20, out
    # Rekey-Timeout apart (scaled): 5 s plus 0–333 ms jitter, with room for the engine's own scheduling.
    gaps = [(b - a) * SCALE for a, b in itertools.pairwise(stamps)]
    assert all(4.0 <= g <= 7.0 for g in gaps), gaps

    # Then nothing more, for well past Rekey-Attempt-Time (scaled 40 s).
    time.sleep(40 / SCALE)
    assert _initiations(nb) == 20
    assert "giving up" in topo.a.log()

    # New traffic starts a new round.
    topo.ping(0, INNER4[1], count=1, deadline=1, check=False)
    assert wait_for(lambda: _initiations(nb) >= 21, 2)
