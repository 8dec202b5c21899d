"""A dress rehearsal of the protocol in memory, run before the engine drops its privileges.

After `main.drop_to` the engine may be unable to read the directory it was started from (a venv in a
private home), so nothing may be imported any more — and libraries load parts of themselves on first use
(`cryptography` imports its backend when the first X25519 key is made). Two in-memory devices therefore
go once through everything the data path can touch: a handshake under load (cookie reply, XChaCha20),
transport data both ways, a packet that fails to decrypt, and a UAPI set/get round trip. With the
compiled data path the devices use it, and one run is sealed and opened through its batch calls too.
"""

from __future__ import annotations

import ipaddress
import os
import struct
import time
from types import ModuleType

from wgdesk import uapi
from wgdesk.proto.changes import DeviceChange, Endpoint, PeerChange
from wgdesk.proto.device import Device
from wgdesk.proto.keys import generate_private_key, public_key

A: Endpoint = ("192.0.2.1", 1)
B: Endpoint = ("192.0.2.2", 2)


class RehearsalFailed(RuntimeError):
    """The in-memory exchange did not complete: the crypto libraries do not work as expected."""


def _packet(src: str, dst: str) -> bytes:
    s, d = ipaddress.ip_address(src).packed, ipaddress.ip_address(dst).packed
    return struct.pack("!BBHHHBBH4s4s", 0x45, 0, 28, 0, 0, 64, 17, 0, s, d) + bytes(8)


def rehearse(datapath: ModuleType | None = None) -> None:
    """Run the exchange (on `datapath`, the compiled module, when given); raises `RehearsalFailed`
    when a step does not give what it must."""
    now = time.monotonic()
    a = Device(os.urandom, time.time, datapath=datapath)
    b = Device(os.urandom, time.time, datapath=datapath)
    ka, kb = generate_private_key(os.urandom), generate_private_key(os.urandom)
    for dev, key, peer_key, endpoint, inner in ((a, ka, kb, B, "10.0.0.2"), (b, kb, ka, A, "10.0.0.1")):
        text = uapi.format_set(
            DeviceChange(
                private_key=key,
                peers=(
                    PeerChange(
                        public_key=public_key(peer_key),
                        preshared_key=bytes(range(32)),
                        endpoint=endpoint,
                        allowed_ips=(ipaddress.ip_network(f"{inner}/32"), ipaddress.ip_network("fd00::/64")),
                    ),
                ),
            )
        )
        dev.apply(uapi.parse_set([line for line in text.splitlines()[1:] if line]), now)
    b.pending_handshakes = b.under_load_threshold  # b answers the first initiation with a cookie reply
    a.send_packet(_packet("10.0.0.1", "10.0.0.2"), now)
    for _ in range(6):
        for data, _ in a.datagrams_to_send():
            b.receive_datagram(data, A, now)
        for data, _ in b.datagrams_to_send():
            a.receive_datagram(data, B, now)
        b.pending_handshakes = 0
        now += 0.05
        a.handle_timer(now)
        b.handle_timer(now)
    if not b.packets_to_tun():
        raise RehearsalFailed("no packet came through the in-memory handshake")
    b.send_packet(_packet("10.0.0.2", "10.0.0.1"), now)
    (reply, _), *_ = b.datagrams_to_send()
    a.receive_datagram(reply[:-1] + bytes([reply[-1] ^ 1]), B, now)  # fails to decrypt: dropped
    a.receive_datagram(reply, B, now)
    if len(a.packets_to_tun()) != 1:
        raise RehearsalFailed("the in-memory reply did not decrypt")
    if datapath is not None:
        batch = datapath.Packets()
        batch.append(_packet("10.0.0.2", "10.0.0.1"))
        b.send_batch(batch, now)
        received = datapath.Packets()
        for data, _ in b.datagrams_to_send():
            received.append_datagram(data, B)
        a.receive_batch(received, now)
        if len(a.packets_to_tun()) != 1:
            raise RehearsalFailed("the compiled data path did not carry a packet in memory")
    while a.next_event() is not None:
        pass
    uapi.parse_get(uapi.format_get(a.snapshot(now)).splitlines())
