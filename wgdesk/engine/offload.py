"""TUN offloads: the `virtio_net_hdr` in front of every packet of an `IFF_VNET_HDR` TUN, and
receive-side TCP segment coalescing (what the kernel's GRO does for a NIC).

Decrypted packets that continue one TCP stream (same addresses, ports, ACK and options, contiguous
sequence numbers, equal segment sizes with possibly a shorter last one) are written to the TUN as
one large packet whose header says `GSO_TCPV4`/`GSO_TCPV6` and "checksum needed": the kernel
handles the run as one socket buffer, for one system call. Everything else is written as it came,
behind an empty header. The merged packet keeps the first segment's headers with the total length,
the IPv4 header checksum, the PSH flag of the last segment and, in the TCP checksum field, the
pseudo-header sum the kernel completes (integrity was already checked by the AEAD).
"""

from __future__ import annotations

import struct
import sys
from collections.abc import Callable

VNET_HDR_LEN = 10
"""`struct virtio_net_hdr` without `num_buffers` (the TUN default)."""

VIRTIO_NET_HDR_F_NEEDS_CSUM = 1
VIRTIO_NET_HDR_GSO_TCPV4 = 1
VIRTIO_NET_HDR_GSO_TCPV6 = 4
EMPTY_HEADER = bytes(VNET_HDR_LEN)

_VNET = struct.Struct("<BBHHHH" if sys.byteorder == "little" else ">BBHHHH")
_IP4_WORDS = struct.Struct("!10H")
_MAX_IP_LENGTH = 65535
_ACK = 0x10
_PSH = 0x08
_PLAIN_FLAGS = frozenset({_ACK, _ACK | _PSH})


def _fold(total: int) -> int:
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def _pseudo_sum(addresses: bytes, length: int) -> int:
    """The TCP pseudo-header sum (addresses, protocol 6, TCP length), folded, not inverted."""
    words = struct.unpack(f"!{len(addresses) // 2}H", addresses)
    return _fold(sum(words) + 6 + (length >> 16) + (length & 0xFFFF))


def _tcp_head(packet: bytes) -> tuple[int, int] | None:
    """(IP header length, TCP header length) of a plain TCP data segment, else None.

    Plain means: IPv4 without options or fragmentation, or IPv6 without extension headers; only
    ACK (and PSH) set; some payload.
    """
    first = packet[0]
    if first == 0x45:
        if packet[9] != 6 or packet[6] & 0x3F or packet[7]:
            return None
        ip_len = 20
    elif first >> 4 == 6:
        if packet[6] != 6:
            return None
        ip_len = 40
    else:
        return None
    if len(packet) < ip_len + 20:
        return None
    tcp_len = (packet[ip_len + 12] >> 4) * 4
    flags = packet[ip_len + 13]
    if tcp_len < 20 or flags not in _PLAIN_FLAGS or len(packet) <= ip_len + tcp_len:
        return None
    return ip_len, tcp_len


def _merge(run: list[bytes], ip_len: int, tcp_len: int) -> list[bytes | memoryview]:
    """One GSO packet (virtio header, headers, payloads as iovecs) for a run of ≥ 2 segments."""
    first = run[0]
    head_len = ip_len + tcp_len
    total = head_len + sum(len(p) for p in run) - head_len * len(run)
    head = bytearray(first[:head_len])
    head[ip_len + 13] |= run[-1][ip_len + 13] & _PSH
    if ip_len == 20:
        head[2:4] = total.to_bytes(2, "big")
        head[10:12] = b"\0\0"
        head[10:12] = (~_fold(sum(_IP4_WORDS.unpack_from(head))) & 0xFFFF).to_bytes(2, "big")
        pseudo = _pseudo_sum(first[12:20], total - 20)
        gso_type = VIRTIO_NET_HDR_GSO_TCPV4
    else:
        head[4:6] = (total - 40).to_bytes(2, "big")
        pseudo = _pseudo_sum(first[8:40], total - 40)
        gso_type = VIRTIO_NET_HDR_GSO_TCPV6
    head[ip_len + 16 : ip_len + 18] = pseudo.to_bytes(2, "big")
    vnet = _VNET.pack(VIRTIO_NET_HDR_F_NEEDS_CSUM, gso_type, head_len, len(first) - head_len, ip_len, 16)
    iov: list[bytes | memoryview] = [vnet, bytes(head)]
    iov.extend([memoryview(p)[head_len:] for p in run])
    return iov


def coalesce(packets: list[bytes], write: Callable[[list[bytes | memoryview]], object]) -> int:
    """Hand `packets` to `write` as iovec lists (virtio header first), TCP runs merged.

    Returns how many `write` calls were made. Order between flows is kept: a run is flushed as
    soon as a packet that cannot join it arrives.
    """
    writes = 0
    run: list[bytes] = []
    run_key = b""
    ip_len = tcp_len = seg = next_seq = 0
    length = 0
    for packet in packets:
        head = _tcp_head(packet)
        if head is not None and run:
            p_ip, p_tcp = head
            size = len(packet) - p_ip - p_tcp
            if (
                p_ip == ip_len
                and p_tcp == tcp_len
                and size <= seg
                and length + size <= _MAX_IP_LENGTH
                and not run[-1][ip_len + 13] & _PSH
                and len(run[-1]) - ip_len - tcp_len == seg
                and int.from_bytes(packet[ip_len + 4 : ip_len + 8], "big") == next_seq
                and packet[ip_len - 32 if ip_len == 40 else 12 : ip_len + 4] == run_key
                and packet[ip_len + 8 : ip_len + 12] == run[0][ip_len + 8 : ip_len + 12]
                and packet[ip_len + 20 : ip_len + tcp_len] == run[0][ip_len + 20 : ip_len + tcp_len]
                and (ip_len == 40 or (packet[8] == run[0][8] and packet[1] == run[0][1]))
            ):
                run.append(packet)
                length += size
                next_seq = (next_seq + size) & 0xFFFFFFFF
                continue
        if run:
            write(_merge(run, ip_len, tcp_len) if len(run) > 1 else [EMPTY_HEADER, run[0]])
            writes += 1
            run = []
        if head is None:
            write([EMPTY_HEADER, packet])
            writes += 1
            continue
        ip_len, tcp_len = head
        seg = len(packet) - ip_len - tcp_len
        length = len(packet)
        next_seq = (int.from_bytes(packet[ip_len + 4 : ip_len + 8], "big") + seg) & 0xFFFFFFFF
        run_key = packet[ip_len - 32 if ip_len == 40 else 12 : ip_len + 4]
        run = [packet]
    if run:
        write(_merge(run, ip_len, tcp_len) if len(run) > 1 else [EMPTY_HEADER, run[0]])
        writes += 1
    return writes


__all__ = ["EMPTY_HEADER", "VNET_HDR_LEN", "coalesce"]
