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
# IPv4 (no options) + TCP: TOS, flags/fragment, TTL, protocol, addresses+ports, seq, ack, offset, flags
_V4_TCP = struct.Struct("!xB4xHBB2x12sIIBB")
# IPv6 (no extension header) + TCP: version/class/flow, next header, hop limit, addresses+ports, ...
_V6_TCP = struct.Struct("!I2xBB36sIIBB")
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
    soon as a packet that cannot join it arrives. A segment joins the run when everything but its
    sequence number, length and checksums equals the run's first segment (the "signature": TOS,
    TTL, DF / traffic class and flow label, hop limit, addresses, ports, ACK, header length,
    options), it starts where the run ends, is no longer than the first, and the previous one
    was neither shorter nor PSH.
    """
    writes = 0
    run: list[bytes] = []
    signature: tuple[object, ...] = ()
    ip_len = tcp_len = seg = last = length = next_seq = 0
    pushed = False
    for packet in packets:
        n = len(packet)
        first = packet[0]
        sig: tuple[object, ...] | None = None
        if first == 0x45 and n > 40:
            tos, frag, ttl, proto, ends, seq, ack, off, flags = _V4_TCP.unpack_from(packet)
            if proto == 6 and not frag & 0x3FFF and flags in _PLAIN_FLAGS and off >= 0x50:
                p_ip = 20
                p_tcp = (off >> 4) * 4
                sig = (tos, frag, ttl, ends, ack, off, packet[40 : 20 + p_tcp])
        elif first >> 4 == 6 and n > 60:
            flow, proto, hop, ends, seq, ack, off, flags = _V6_TCP.unpack_from(packet)
            if proto == 6 and flags in _PLAIN_FLAGS and off >= 0x50:
                p_ip = 40
                p_tcp = (off >> 4) * 4
                sig = (flow, hop, ends, ack, off, packet[60 : 40 + p_tcp])
        if sig is not None:
            size = n - p_ip - p_tcp
            if size <= 0:
                sig = None
            elif (
                run
                and seq == next_seq
                and sig == signature
                and size <= seg
                and last == seg
                and not pushed
                and length + size <= _MAX_IP_LENGTH
            ):
                run.append(packet)
                length += size
                last = size
                pushed = bool(flags & _PSH)
                next_seq = (seq + size) & 0xFFFFFFFF
                continue
        if run:
            write(_merge(run, ip_len, tcp_len) if len(run) > 1 else [EMPTY_HEADER, run[0]])
            writes += 1
            run = []
        if sig is None:
            write([EMPTY_HEADER, packet])
            writes += 1
            continue
        run = [packet]
        signature = sig
        ip_len, tcp_len = p_ip, p_tcp
        seg = last = size
        length = n
        pushed = bool(flags & _PSH)
        next_seq = (seq + size) & 0xFFFFFFFF
    if run:
        write(_merge(run, ip_len, tcp_len) if len(run) > 1 else [EMPTY_HEADER, run[0]])
        writes += 1
    return writes


__all__ = ["EMPTY_HEADER", "VNET_HDR_LEN", "coalesce"]
