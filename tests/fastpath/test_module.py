"""The compiled module's parts against their references and the kernel.

* `Aead` against cryptography's ChaCha20Poly1305 (the pure path's AEAD), wiping;
* `ReplayWindow` against proto's `ReplayFilter`;
* `tun_read` splitting TSO/USO superframes (checksums recomputed and verified here) and finishing
  "checksum needed" packets, fed through a socket pair standing in for the TUN;
* `tun_write` coalescing against `engine.offload.coalesce`, byte for byte;
* `udp_send` / `udp_recv` over loopback with GSO and GRO, and one datagram per call (portable);
* runs of a refilled batch are never sent or written.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import random
import socket
import struct
from types import ModuleType

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from tests.engine.test_offload import checksum, segment
from wgdesk.engine.offload import coalesce
from wgdesk.proto.constants import REJECT_AFTER_MESSAGES
from wgdesk.proto.replay import WINDOW_SIZE, ReplayFilter

VNET = struct.Struct("=BBHHHH")
NEEDS_CSUM = 1
GSO_TCPV4, GSO_TCPV6, GSO_UDP_L4 = 1, 4, 5


def test_aead_matches_cryptography(fastpath: ModuleType) -> None:
    rng = random.Random(1)
    for _ in range(300):
        key = rng.randbytes(32)
        nonce = rng.randbytes(12)
        data = rng.randbytes(rng.choice((0, 1, 15, 16, 17, 64, 1420, 1500, 9000)))
        ad = rng.choice((None, b"", rng.randbytes(rng.randrange(1, 40))))
        ours, ref = fastpath.Aead(key), ChaCha20Poly1305(key)
        sealed = ours.encrypt(nonce, data, ad)
        assert sealed == ref.encrypt(nonce, data, ad)
        assert ours.decrypt(nonce, sealed, ad) == data
        flipped = bytearray(sealed)
        flipped[rng.randrange(len(flipped))] ^= 1 << rng.randrange(8)
        with pytest.raises(InvalidTag):
            ours.decrypt(nonce, bytes(flipped), ad)
    with pytest.raises(InvalidTag):
        fastpath.Aead(bytes(32)).decrypt(bytes(12), b"short", None)
    with pytest.raises(ValueError):
        fastpath.Aead(bytes(31))


def test_a_wiped_aead_neither_seals_nor_opens(fastpath: ModuleType) -> None:
    aead = fastpath.Aead(bytes(range(32)))
    sealed = aead.encrypt(bytes(12), b"data", None)
    assert not aead.wiped
    aead.wipe()
    assert aead.wiped
    with pytest.raises(ValueError):
        aead.encrypt(bytes(12), b"data", None)
    with pytest.raises(InvalidTag):
        aead.decrypt(bytes(12), sealed, None)


def test_replay_window_matches_the_reference(fastpath: ModuleType) -> None:
    rng = random.Random(2)
    for _ in range(40):
        ours, ref = fastpath.ReplayWindow(), ReplayFilter()
        base = rng.choice((0, 10**6, REJECT_AFTER_MESSAGES - 3 * WINDOW_SIZE))
        for _ in range(2000):
            r = rng.random()
            if r < 0.01:
                counter = rng.choice(
                    (-1, -(2**70), 2**64, 2**70, REJECT_AFTER_MESSAGES - 1, REJECT_AFTER_MESSAGES)
                )
            else:
                base += rng.choice((0, 1, 1, 1, 2, 5, 63, 64, 65, 200, WINDOW_SIZE, 3 * WINDOW_SIZE))
                counter = max(0, base - rng.randrange(0, WINDOW_SIZE + 200))
            assert ours.check(counter) == ref.check(counter), counter
        ours.reset()
        assert ours.check(0)


def tcp_superframe(version: int, payload: bytes, mss: int, flags: int = 0x18 | 0x80 | 0x01) -> bytes:
    """A TSO superframe as the kernel hands it over: one big segment, pseudo sum in the checksum."""
    big = bytearray(segment(version, 1000, payload, flags=flags))
    ip_len = 20 if version == 4 else 40
    total_tcp = len(big) - ip_len
    pseudo = big[12:20] if version == 4 else big[8:40]
    partial = checksum(bytes(pseudo) + struct.pack("!HH", 6, total_tcp) if version == 4 else
                       bytes(pseudo) + struct.pack("!IxxxB", total_tcp, 6))  # fmt: skip
    big[ip_len + 16 : ip_len + 18] = partial.to_bytes(2, "big")
    gso = GSO_TCPV4 if version == 4 else GSO_TCPV6
    return VNET.pack(NEEDS_CSUM, gso, ip_len + 32, mss, ip_len, 16) + bytes(big)


def l4_checksum_ok(packet: bytes) -> bool:
    version = packet[0] >> 4
    ip_len = 20 if version == 4 else 40
    proto = packet[9] if version == 4 else packet[6]
    l4 = packet[ip_len:]
    pseudo = (
        packet[12:20] + struct.pack("!HH", proto, len(l4))
        if version == 4
        else packet[8:40] + struct.pack("!IxxxB", len(l4), proto)
    )
    return checksum(pseudo + l4) == 0xFFFF


def feed(fastpath: ModuleType, frames: list[bytes], vnet: bool = True, port: int = 0) -> tuple[object, int]:
    """Frames through a datagram socket pair standing in for the TUN; returns (batch, count)."""
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    with a, b:
        b.setblocking(False)
        for frame in frames:
            a.send(frame)
        batch = fastpath.Packets()
        count, malformed = fastpath.tun_read(b.fileno(), batch, 100, vnet, port, False)
        assert count == len(batch)
        return batch, malformed


@pytest.mark.parametrize("version", [4, 6])
@pytest.mark.parametrize("size", [1, 1379, 1380, 1381, 5000, 64000])
def test_tso_superframes_are_split_with_checksums(fastpath: ModuleType, version: int, size: int) -> None:
    payload = random.Random(size).randbytes(size)
    mss = 1380
    batch, malformed = feed(fastpath, [tcp_superframe(version, payload, mss)])
    assert malformed == 0
    segments = [batch.packet(i) for i in range(len(batch))]
    assert len(segments) == -(-size // mss)
    ip_len = 20 if version == 4 else 40
    joined = b""
    for k, seg in enumerate(segments):
        head = seg[: ip_len + 32]
        assert l4_checksum_ok(seg), k
        if version == 4:
            assert checksum(seg[:20]) == 0xFFFF
            assert struct.unpack_from("!H", seg, 2)[0] == len(seg)
            assert struct.unpack_from("!H", seg, 4)[0] == 1 + k  # IP id counts up
        else:
            assert struct.unpack_from("!H", seg, 4)[0] == len(seg) - 40
        seq, flags = struct.unpack_from("!I", head, ip_len + 4)[0], head[ip_len + 13]
        assert seq == 1000 + k * mss
        last = k == len(segments) - 1
        assert bool(flags & 0x01) == last and bool(flags & 0x08) == last  # FIN, PSH: last only
        assert bool(flags & 0x80) == (k == 0)  # CWR: first only
        joined += seg[ip_len + 32 :]
    assert joined == payload


def test_uso_and_checksum_needed_packets(fastpath: ModuleType) -> None:
    src, dst = ipaddress.ip_address("10.0.0.1").packed, ipaddress.ip_address("10.0.0.2").packed
    data = bytes(range(256)) * 10
    udp = struct.pack("!HHHH", 1234, 5678, 8 + len(data), 0) + data
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 7, 0, 64, 17, 0, src, dst)
    ip = ip[:10] + (~checksum(ip) & 0xFFFF).to_bytes(2, "big") + ip[12:]
    partial = checksum(src + dst + struct.pack("!HH", 17, len(udp)))
    udp = udp[:6] + partial.to_bytes(2, "big") + udp[8:]
    uso = VNET.pack(NEEDS_CSUM, GSO_UDP_L4, 28, 1000, 20, 6) + ip + udp
    single = VNET.pack(NEEDS_CSUM, 0, 0, 0, 20, 6) + ip + udp
    batch, malformed = feed(fastpath, [uso, single, b"\x01" * 5, VNET.pack(0, 9, 0, 0, 0, 0) + ip + udp])
    assert malformed == 2  # shorter than a header; an unknown GSO type
    packets = [batch.packet(i) for i in range(len(batch))]
    assert [len(p) - 28 for p in packets] == [1000, 1000, 560, 2560]
    for p in packets:
        assert l4_checksum_ok(p) and checksum(p[:20]) == 0xFFFF
    assert b"".join(p[28:] for p in packets[:3]) == data


def test_own_udp_port_is_dropped_and_counted(fastpath: ModuleType) -> None:
    src, dst = ipaddress.ip_address("10.0.0.1").packed, ipaddress.ip_address("10.0.0.2").packed
    udp = struct.pack("!HHHH", 51820, 9, 8 + 40, 0) + bytes(40)
    ours = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0, src, dst) + udp
    other = ours[:20] + struct.pack("!H", 51821) + ours[22:]
    batch, _ = feed(fastpath, [ours, other, ours], vnet=False, port=51820)
    assert len(batch) == 1 and batch.packet(0) == other
    assert batch.routed_back == 2


def test_slot_accessors_refuse_bad_indices(fastpath: ModuleType) -> None:
    """Every per-slot accessor checks its index: past the end, negative or not an int is an exception,
    never a read outside the arena (the slots beyond `count` hold a previous batch's bytes)."""
    batch, _ = feed(fastpath, [bytes(28)], vnet=False, port=51820)
    assert len(batch) == 1
    accessors = (batch.packet, batch.status, batch.wire_len, batch.drop, batch.inner_source)
    for accessor in accessors:
        for bad in (1, -1, 1 << 40):
            with pytest.raises(IndexError, match="packet index out of range"):
                accessor(bad)
        with pytest.raises(TypeError):
            accessor("0")
    assert batch.packet(0) == bytes(28)


def reference_writes(packets: list[bytes]) -> list[bytes]:
    writes: list[bytes] = []
    coalesce(packets, lambda iov: writes.append(b"".join(bytes(p) for p in iov)))
    return writes


def test_tun_write_coalesces_exactly_like_the_reference(fastpath: ModuleType) -> None:
    rng = random.Random(3)
    for _ in range(60):
        packets: list[bytes] = []
        seq = {4: 1, 6: 1}
        for _ in range(rng.randrange(1, 60)):
            r = rng.random()
            version = rng.choice((4, 6))
            if r < 0.8:
                size = rng.choice((1380, 1380, 1380, 1000, 1))
                flags = 0x18 if rng.random() < 0.1 else 0x10
                if rng.random() < 0.05:
                    seq[version] += 7  # a gap
                packets.append(segment(version, seq[version], rng.randbytes(size), flags=flags))
                seq[version] += size
            elif r < 0.9:
                packets.append(segment(version, seq[version], b"", flags=0x10))  # pure ACK
            else:
                packets.append(rng.randbytes(rng.randrange(1, 100)))
        expected = reference_writes(packets)
        a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        with a, b:
            a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 22)
            b.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
            writes, failed = fastpath.tun_write(a.fileno(), packets, True, False)
            b.setblocking(False)
            got = [b.recv(1 << 17) for _ in range(writes)]
        assert failed == 0
        assert got == expected


def test_portable_tun_io_one_packet_per_call_with_af_header(fastpath: ModuleType) -> None:
    v4 = segment(4, 1, b"x" * 10)
    v6 = segment(6, 1, b"y" * 10)
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    with a, b:
        writes, failed = fastpath.tun_write(a.fileno(), [v4, v6], False, True)
        assert (writes, failed) == (2, 0)
        assert b.recv(2000) == b"\0\0\0\x02" + v4
        assert b.recv(2000) == b"\0\0\0\x1e" + v6  # AF_INET6 is 30 on macOS
        a.send(b"\0\0\0\x02" + v4)
        b.setblocking(False)
        batch = fastpath.Packets()
        count, _ = fastpath.tun_read(b.fileno(), batch, 10, False, 0, True)
        assert count == 1 and batch.packet(0) == v4


@pytest.mark.parametrize("gso", [True, False])
@pytest.mark.parametrize("family", [socket.AF_INET, socket.AF_INET6])
def test_udp_send_and_receive(fastpath: ModuleType, gso: bool, family: int) -> None:
    host = "127.0.0.1" if family == socket.AF_INET else "::1"
    rx = socket.socket(family, socket.SOCK_DGRAM)
    tx = socket.socket(family, socket.SOCK_DGRAM)
    with rx, tx:
        rx.bind((host, 0))
        tx.bind((host, 0))
        rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
        if gso:
            rx.setsockopt(17, 104, 1)  # UDP_GRO
        rx.setblocking(False)
        dest = (host, rx.getsockname()[1])
        sent = [os.urandom(1200) for _ in range(70)] + [os.urandom(300), os.urandom(1200)]
        fd4, fd6 = (tx.fileno(), -1) if family == socket.AF_INET else (-1, tx.fileno())
        failed, error, still_gso = fastpath.udp_send(fd4, fd6, [(d, dest) for d in sent], gso)
        assert (failed, still_gso) == (0, gso), error
        # to the missing family: counted as failed, nothing raised
        other = ("::1", 9) if family == socket.AF_INET else ("127.0.0.1", 9)
        assert fastpath.udp_send(fd4, fd6, [(b"x", other)], gso)[0] == 1
        batch = fastpath.Packets()
        got = fastpath.udp_recv(rx.fileno(), batch, 1000, gso)
        assert got == len(sent)
        assert [batch.packet(i) for i in range(got)] == sent
        _, runs = batch.sessions()
        assert {run[1] for run in runs} == {(host, tx.getsockname()[1])}


def test_runs_of_a_refilled_batch_are_neither_sent_nor_written(fastpath: ModuleType) -> None:
    batch = fastpath.Packets()
    batch.append(segment(4, 1, b"secret" * 10))
    run = fastpath.seal(fastpath.Aead(bytes(32)), batch, 0, 1, 0, 1420, b"\x04\0\0\0\x01\0\0\0")
    assert len(run.packets()) == 1 and b"secret" not in run.packets()[0]
    batch.clear()
    batch.append(segment(4, 1, b"plain!" * 10))  # the arena now holds plaintext where the run was
    assert run.packets() == []
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with rx, tx:
        rx.bind(("127.0.0.1", 0))
        rx.setblocking(False)
        assert fastpath.udp_send(tx.fileno(), -1, [(run, rx.getsockname())], False)[0] == 0
        with pytest.raises(BlockingIOError):
            rx.recv(2000)


def test_writer_thread_sends_and_writes_in_order(fastpath: ModuleType) -> None:
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tun_in, tun_out = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    with rx, tx, tun_in, tun_out:
        rx.bind(("127.0.0.1", 0))
        rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
        dest = rx.getsockname()
        # a full "TUN": the thread's first write blocks until the test reads, so what is queued
        # behind it stays queued while the test looks
        tun_in.setblocking(False)
        filler = 0
        with contextlib.suppress(BlockingIOError):
            while True:
                tun_in.send(b"f" * 1000)
                filler += 1
        tun_in.setblocking(True)
        writer = fastpath.Writer(tun_in.fileno(), False, False)
        batch = fastpath.Packets()
        plain = [segment(4, 1 + i, bytes([i]) * 100) for i in range(50)]
        for packet in plain:
            batch.append(packet)
        run = fastpath.seal(fastpath.Aead(bytes(32)), batch, 0, 50, 0, 1420, b"\x04\0\0\0\x01\0\0\0")
        sealed = run.packets()
        writer.submit_tun(plain[:5])  # more than a sparse job: queued for the thread, which blocks
        writer.submit_udp(tx.fileno(), -1, [(b"first", dest), (run, dest), (b"last", dest)], False)
        writer.submit_tun([plain[5]])  # small, but queued behind the others: order is kept
        assert batch.in_flight == 1
        with pytest.raises(RuntimeError, match="in flight"):
            batch.clear()  # refilling a batch the thread still reads is refused
        with pytest.raises(RuntimeError, match="in flight"):
            fastpath.tun_read(tun_out.fileno(), batch, 1, False, 0, False)
        got = [tun_out.recv(2000) for _ in range(filler + 6)]
        assert got[filler:] == plain[:6]
        writer.wait_idle(None)
        assert batch.in_flight == 0
        udp_failed, _, _, writes, tun_failed, gone = writer.poll()
        assert (udp_failed, writes, tun_failed, gone) == (0, 6, 0, 0)
        # nothing queued: a sparse job goes out on the calling thread before submit returns
        writer.submit_tun([plain[6]])
        assert writer.poll()[3] == 1
        tun_out.setblocking(False)
        assert tun_out.recv(2000) == plain[6]
        rx.setblocking(False)
        assert [rx.recv(2000) for _ in range(52)] == [b"first", *sealed, b"last"]
        writer.close()
        with pytest.raises(ValueError):
            writer.submit_tun([b"x"])


def test_writer_reports_a_deleted_interface(fastpath: ModuleType) -> None:
    fd = os.open("/dev/null", os.O_RDONLY)  # writes fail with EBADF: counted, not "gone"
    try:
        writer = fastpath.Writer(fd, False, False)
        writer.submit_tun([b"\x45" + bytes(19)])
        writer.wait_idle(None)
        assert writer.poll()[4] == 1
        writer.close()
    finally:
        os.close(fd)
