"""A wgdesk-engine initiator against a real responder under load: the cookie reply is answered at once.

The responder (wgdesk-engine or wireguard-go) is put under load the way an attacker would: a flood of
initiations with a valid mac1 (computed from its public key; random body) from another address of the
initiator's namespace. wgdesk enters the under-load state when one source exceeds the rate limiter
(20/s, burst 5), wireguard-go when 128 handshake messages are queued; both then answer initiations
without a valid mac2 with a cookie reply. Our initiator's first initiation gets one, and the handshake
completes well before Rekey-Timeout (5 s), when a standard initiator would send its next initiation:
the resend with mac2 (docs/architecture.md, protocol deviations) was accepted by a real responder that
was still under load.
"""

from __future__ import annotations

import base64
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.interop.wgnet import INNER4, OUTER4, PORTS, Topology, wait_handshake
from tests.netns import IP, wait_for
from wgdesk.proto.constants import REKEY_TIMEOUT
from wgdesk.proto.cookie import CookieGenerator

pytestmark = pytest.mark.root

FLOOD_SOURCE = "10.101.0.3"  # another address of the initiator's namespace (the rate limiter keys by IP)

# Sends the 148-byte messages of a file round-robin to DST:PORT from SRC, in bursts of BURST every
# PERIOD seconds, until killed or SECONDS pass. A burst is fast enough to queue far more than 128
# handshake messages at wireguard-go, yet fits the responder's socket buffer, which drains between
# bursts: the legitimate peer's messages are not lost in a receive-buffer overflow.
FLOOD = """
import socket, sys, time
src, dst, port, path, burst, period, seconds = sys.argv[1:8]
data = open(path, "rb").read()
msgs = [data[i:i + 148] for i in range(0, len(data), 148)]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((src, 0))
end = time.monotonic() + float(seconds)
i = 0
while time.monotonic() < end:
    for _ in range(int(burst)):
        s.sendto(msgs[i % len(msgs)], (dst, int(port)))
        i += 1
    time.sleep(float(period))
"""
BURST = 200
PERIOD = 0.05


def valid_mac1_initiations(responder_public: str, count: int) -> bytes:
    """`count` initiations with random bodies and a valid mac1 for the responder, mac2 zero."""
    generator = CookieGenerator(base64.b64decode(responder_public))
    return b"".join(
        generator.add_macs(bytearray(b"\x01\x00\x00\x00" + os.urandom(112) + bytes(32)), 0.0)
        for _ in range(count)
    )


@pytest.mark.parametrize("responder_impl", ["wgdesk", "go"])
def test_initiator_resends_at_once_on_a_cookie_from_a_loaded_responder(
    t1: Callable[..., Topology], tmp_path: Path, responder_impl: str
) -> None:
    topo = t1("wgdesk", responder_impl, outer="4", endpoints=(0,))  # only a knows b: a initiates
    topo.na.exec(IP, "addr", "add", f"{FLOOD_SOURCE}/24", "dev", topo.veth[0])
    flood_file = tmp_path / "flood.bin"
    flood_file.write_bytes(valid_mac1_initiations(topo.b.public, 256))
    flood = topo.na.popen(
        "python3",
        "-c",
        FLOOD,
        FLOOD_SOURCE,
        OUTER4[1],
        str(PORTS[1]),
        str(flood_file),
        str(BURST),
        str(PERIOD),
        "30",
    )
    try:
        # The responder answers the flood with cookie replies once it is under load.
        assert wait_for(lambda: "Sending cookie response" in topo.b.log(), 15), topo.b.log()[-2000:]
        started = time.monotonic()
        topo.ping(0, INNER4[1], count=1, deadline=int(REKEY_TIMEOUT) - 1)
        took = time.monotonic() - started
        wait_handshake(topo.b, topo.a.public, timeout=1)
    finally:
        flood.kill()
        flood.wait()
    a_log = topo.a.log()
    assert "Received cookie response" in a_log, a_log[-3000:]
    # The first initiation (no mac2) was refused with a cookie, the resend (with it) was accepted,
    # all well before the retransmission a standard initiator would have waited for.
    assert took < REKEY_TIMEOUT - 1, (took, a_log[-3000:])
    initiations = [line for line in a_log.splitlines() if "Sending handshake initiation" in line]
    assert len(initiations) == 2, a_log[-3000:]
