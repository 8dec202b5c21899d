"""Receive-side TCP coalescing for an `IFF_VNET_HDR` TUN: which packets merge and what the merged
packet says. (The kernel accepting it is covered end to end by the wgdesk ↔ wgdesk iperf3 cases
in tests/interop/test_traffic.py.)
"""

from __future__ import annotations

import ipaddress
import struct

import pytest

from wgdesk.engine.offload import (
    EMPTY_HEADER,
    VIRTIO_NET_HDR_F_NEEDS_CSUM,
    VIRTIO_NET_HDR_GSO_TCPV4,
    VIRTIO_NET_HDR_GSO_TCPV6,
    VNET_HDR_LEN,
    coalesce,
)

OPTIONS = b"\x01\x01\x08\x0a" + bytes(range(8))  # NOP NOP timestamps: a 32-byte TCP header


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def segment(
    version: int, seq: int, payload: bytes, flags: int = 0x10, ack: int = 7, sport: int = 40000
) -> bytes:
    tcp = struct.pack("!HHIIBBHHH", sport, 5201, seq, ack, (32 // 4) << 4, flags, 500, 0, 0) + OPTIONS
    if version == 4:
        src, dst = ipaddress.ip_address("10.0.0.1").packed, ipaddress.ip_address("10.0.0.2").packed
        pseudo = src + dst + struct.pack("!HH", 6, len(tcp) + len(payload))
    else:
        src, dst = ipaddress.ip_address("fd00::1").packed, ipaddress.ip_address("fd00::2").packed
        pseudo = src + dst + struct.pack("!IxxxB", len(tcp) + len(payload), 6)
    csum = ~checksum(pseudo + tcp + payload) & 0xFFFF
    tcp = tcp[:16] + csum.to_bytes(2, "big") + tcp[18:]
    if version == 4:
        ip = bytearray(
            struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp) + len(payload), 1, 0x4000, 64, 6, 0, src, dst)
        )
        ip[10:12] = (~checksum(bytes(ip)) & 0xFFFF).to_bytes(2, "big")
        return bytes(ip) + tcp + payload
    ip6 = struct.pack("!IHBB16s16s", 6 << 28, len(tcp) + len(payload), 6, 64, src, dst)
    return ip6 + tcp + payload


def run(packets: list[bytes]) -> list[bytes]:
    writes: list[bytes] = []
    count = coalesce(packets, lambda iov: writes.append(b"".join(bytes(part) for part in iov)))
    assert count == len(writes)
    return writes


@pytest.mark.parametrize("version", [4, 6])
def test_a_stream_becomes_one_gso_packet(version: int) -> None:
    payloads = [bytes([i]) * 1000 for i in range(5)] + [b"end" * 100]
    seq = 0xFFFFF000  # the sequence number wraps inside the run
    packets = []
    for p in payloads:
        packets.append(segment(version, seq, p, flags=0x18 if p is payloads[-1] else 0x10))
        seq = (seq + len(p)) & 0xFFFFFFFF
    (out,) = run(packets)
    flags, gso_type, hdr_len, gso_size, csum_start, csum_offset = struct.unpack("<BBHHHH", out[:VNET_HDR_LEN])
    ip_len = 20 if version == 4 else 40
    assert flags == VIRTIO_NET_HDR_F_NEEDS_CSUM
    assert gso_type == (VIRTIO_NET_HDR_GSO_TCPV4 if version == 4 else VIRTIO_NET_HDR_GSO_TCPV6)
    assert (hdr_len, gso_size, csum_start, csum_offset) == (ip_len + 32, 1000, ip_len, 16)
    merged = out[VNET_HDR_LEN:]
    assert merged[ip_len + 32 :] == b"".join(payloads)
    assert merged[ip_len + 13] == 0x18  # the last segment's PSH
    tcp_length = len(merged) - ip_len
    if version == 4:
        assert int.from_bytes(merged[2:4], "big") == len(merged)
        assert checksum(merged[:20]) == 0xFFFF  # a valid header checksum
        pseudo = merged[12:20] + struct.pack("!HH", 6, tcp_length)
    else:
        assert int.from_bytes(merged[4:6], "big") == tcp_length
        pseudo = merged[8:40] + struct.pack("!IxxxB", tcp_length, 6)
    # The kernel completes the checksum from the pseudo-header sum left in the field.
    assert int.from_bytes(merged[ip_len + 16 : ip_len + 18], "big") == checksum(pseudo)
    assert merged[ip_len : ip_len + 12] == packets[0][ip_len : ip_len + 12]  # ports, first seq, ack


def test_what_cannot_merge_is_written_as_it_came_in_order() -> None:
    a0 = segment(4, 100, b"a" * 500)
    a1 = segment(4, 600, b"b" * 500)
    gap = segment(4, 1200, b"c" * 500)  # 100 bytes missing
    other_flow = segment(4, 1700, b"d" * 500, sport=40001)
    other_ack = segment(4, 2200, b"e" * 500, ack=8)
    ping = bytes.fromhex("45000054000040004001") + bytes(74)
    syn = segment(4, 0, b"x", flags=0x02)
    writes = run([a0, a1, gap, other_flow, ping, other_ack, syn])
    assert len(writes) == 7 - 1
    assert writes[0][VNET_HDR_LEN + 52 :] == b"a" * 500 + b"b" * 500
    assert writes[1:] == [EMPTY_HEADER + p for p in (gap, other_flow, ping, other_ack, syn)]


def test_a_run_ends_at_psh_a_shorter_segment_and_64_kib() -> None:
    after_psh = run([segment(6, 0, b"a" * 100, flags=0x18), segment(6, 100, b"b" * 100)])
    assert len(after_psh) == 2
    after_short = run([segment(6, 0, b"a" * 100), segment(6, 100, b"b" * 50), segment(6, 150, b"c" * 50)])
    assert len(after_short) == 2 and after_short[0].endswith(b"a" * 100 + b"b" * 50)
    longer = run([segment(6, 0, b"a" * 100), segment(6, 100, b"b" * 200)])
    assert len(longer) == 2
    big = [segment(4, i * 1400, bytes(1400)) for i in range(60)]
    sizes = [len(w) - VNET_HDR_LEN for w in run(big)]
    assert len(sizes) == 2 and max(sizes) <= 65535 and sum(sizes) == 60 * 1400 + 2 * 52
