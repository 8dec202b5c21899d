"""Scenario 8 (TESTING.md §4, slow): rekey under traffic, in real time.

A ping every second for 130 s. The initiator starts a new handshake once its session is
Rekey-After-Time (120 s) old and it sends; the new session takes over with no packet lost.
Two topologies run side by side: wgdesk initiating (its timers), and wireguard-go initiating
(wgdesk answering the rekey and switching keypairs as responder).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.interop.wgnet import INNER4, build, wait_handshake
from tests.netns import namespaces

pytestmark = [pytest.mark.root, pytest.mark.slow]

SECONDS = 130


def test_rekey_after_120_seconds_without_loss(tmp_path: Path) -> None:
    with namespaces("wk", "wl", "wm", "wn") as (n1, n2, n3, n4):
        wgdesk_first = build(n1, n2, "wgdesk", "go", tmp_path, endpoints=(0,))
        go_first = build(n3, n4, "wgdesk", "go", tmp_path, endpoints=(1,))
        pings = [
            n1.popen(
                "ping", "-n", "-c", str(SECONDS), "-i", "1", "-W", "2", INNER4[1], stdout=subprocess.PIPE
            ),
            n4.popen(
                "ping", "-n", "-c", str(SECONDS), "-i", "1", "-W", "2", INNER4[0], stdout=subprocess.PIPE
            ),
        ]
        first = [
            wait_handshake(wgdesk_first.b, wgdesk_first.a.public),
            wait_handshake(go_first.a, go_first.b.public),
        ]
        outputs = [p.communicate(timeout=SECONDS + 30)[0].decode() for p in pings]
        last = [
            int(wgdesk_first.b.peer(wgdesk_first.a.public)["handshake"]),
            int(go_first.a.peer(go_first.b.public)["handshake"]),
        ]
        for out, f, la, label in zip(outputs, first, last, ("wgdesk initiates", "go initiates"), strict=True):
            assert f" {SECONDS} received" in out, (label, out[-300:])
            # Rekey-After-Time is 120 s; the next send after it (≤ 1 s later) starts the handshake.
            assert 119 <= la - f <= 126, (label, f, la)
        for topo in (wgdesk_first, go_first):
            assert topo.a.log().count("Session keypair established") >= 2
