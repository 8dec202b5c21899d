"""Two real engines (`wgdesk.engine.loop.Engine`, pure-Python data path — the one that reads through
`Tun.read_batch`, as Windows needs) on `WintunTun`s over fake Wintun DLLs, talking real WireGuard over
loopback UDP: a packet the system hands to one adapter's ring comes out of the other's send ring,
after a real handshake. This is the ring loop and the read-wait bridging inside the engine's selector
loop, not just beside it."""

from __future__ import annotations

import os
import struct
import threading
import time

from tests.windows.fake_windows import FakeKernel32, FakeWintun
from wgdesk.engine.bind import Bind
from wgdesk.engine.loop import Engine
from wgdesk.fastpath import Choice
from wgdesk.platforms.windows import wintun
from wgdesk.platforms.windows.tun import Kernel32Events, WintunTun
from wgdesk.proto.keys import generate_private_key, public_key, to_hex

PURE_PORTABLE = Choice(None, "Windows: the data path that reads through Tun.read_batch", portable=True)


def ipv4(source: bytes, destination: bytes, payload: bytes) -> bytes:
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 1, 0, 64, 17, 0, source, destination)
    return header + payload


def engine_on(name: str) -> tuple[Engine, FakeWintun]:
    fake = FakeWintun(FakeKernel32())
    api = wintun.Wintun(fake, fake.last_error)
    adapter = api.create_adapter(name, wintun.tunnel_guid(name))
    tun = WintunTun(adapter, adapter.start_session(), Kernel32Events(fake.kernel))
    return Engine(tun, None, bind=Bind.open(0, offload=False), datapath=PURE_PORTABLE), fake


def configure(engine: Engine, private: bytes, peer: bytes, port: int, allowed: str) -> None:
    request = (
        f"set=1\nprivate_key={to_hex(private)}\npublic_key={to_hex(public_key(peer))}\n"
        f"endpoint=127.0.0.1:{port}\nallowed_ip={allowed}\n\n"
    )
    reply, _ = engine.handle_uapi(request.encode())
    assert "errno=0" in reply, reply


def test_a_packet_crosses_from_one_wintun_ring_to_the_other() -> None:
    a, fake_a = engine_on("wga")
    b, fake_b = engine_on("wgb")
    key_a, key_b = generate_private_key(os.urandom), generate_private_key(os.urandom)
    configure(a, key_a, key_b, b.bind.port, "10.9.0.2/32")
    configure(b, key_b, key_a, a.bind.port, "10.9.0.1/32")
    threads = [threading.Thread(target=e.run, daemon=True) for e in (a, b)]
    for t in threads:
        t.start()
    try:
        packet = ipv4(bytes([10, 9, 0, 1]), bytes([10, 9, 0, 2]), b"through wintun")
        deadline = time.monotonic() + 20
        while packet not in fake_b.sent and time.monotonic() < deadline:
            fake_a.inject(packet)  # resent until the handshake is done (the first one may be queued)
            time.sleep(0.2)
        assert packet in fake_b.sent, "the packet did not come out of the other adapter's ring"
        reply = ipv4(bytes([10, 9, 0, 2]), bytes([10, 9, 0, 1]), b"and back")
        fake_b.inject(reply)
        deadline = time.monotonic() + 10
        while reply not in fake_a.sent and time.monotonic() < deadline:
            time.sleep(0.05)
        assert reply in fake_a.sent
        assert not fake_a.outstanding and not fake_b.outstanding, "every received packet released"
    finally:
        for e in (a, b):
            e.stop()
        for t in threads:
            t.join(10)
