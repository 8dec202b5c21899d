"""The UDP bind: one port on both families, fwmark, buffer sizes, adoption of handed-over sockets.

Traffic in these tests goes to loopback only.
"""

from __future__ import annotations

import errno
import os
import socket
import sys
from pathlib import Path

import pytest

from wgdesk.engine.bind import SO_MARK, SOCKET_BUFFER_SIZE, Bind, BindError
from wgdesk.platforms.linux import engine as linux

pytestmark = pytest.mark.root

ROOT = Path(__file__).resolve().parents[2]


def test_any_port_binds_both_families_on_the_same_port() -> None:
    bind = Bind.open(0)
    try:
        assert bind.sock4 is not None and bind.sock6 is not None
        assert bind.port != 0
        assert bind.sock4.getsockname()[1] == bind.sock6.getsockname()[1] == bind.port
        assert bind.sock6.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY) == 1
        # The kernel reports double the size asked for; FORCE lets root exceed rmem_max.
        assert bind.sock4.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) >= SOCKET_BUFFER_SIZE
        assert bind.sock6.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) >= SOCKET_BUFFER_SIZE
        assert not bind.sock4.getblocking()
    finally:
        bind.close()


def test_fixed_port_in_use_is_eaddrinuse() -> None:
    holder = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    holder.bind(("0.0.0.0", 0))
    port = holder.getsockname()[1]
    try:
        with pytest.raises(BindError) as info:
            Bind.open(port)
        assert info.value.errno == errno.EADDRINUSE
    finally:
        holder.close()


def test_fwmark_is_set_on_both_sockets_and_cleared() -> None:
    bind = Bind.open(0, fwmark=0x51820)
    try:
        for sock in bind.sockets():
            assert sock.getsockopt(socket.SOL_SOCKET, SO_MARK) == 0x51820
        bind.set_mark(0)
        for sock in bind.sockets():
            assert sock.getsockopt(socket.SOL_SOCKET, SO_MARK) == 0
    finally:
        bind.close()


@pytest.mark.parametrize(("family", "host"), [(socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")])
def test_batches_round_trip_over_loopback(family: int, host: str) -> None:
    bind = Bind.open(0)
    peer = socket.socket(family, socket.SOCK_DGRAM)
    peer.bind((host, 0))
    try:
        peer_port = peer.getsockname()[1]
        sent = [(bytes([i]) * (100 + i), (host, peer_port)) for i in range(20)]
        assert bind.send_batch(sent) == 0
        for data, _ in sent:
            assert peer.recv(2000) == data
        for i in range(20):
            peer.sendto(bytes([i]) * 7, (host, bind.port))
        sock = bind.sock4 if family == socket.AF_INET else bind.sock6
        assert sock is not None
        got: list[tuple[bytes, tuple[str, int]]] = []
        while len(got) < 20:
            got += Bind.recv_batch(sock, 8)
        assert [d for d, _ in got] == [bytes([i]) * 7 for i in range(20)]
        assert {a for _, a in got} == {(host, peer_port)}
        assert Bind.recv_batch(sock, 8) == []  # drained: returns at once, no blocking
    finally:
        peer.close()
        bind.close()


def test_send_failures_are_counted_not_raised() -> None:
    bind = Bind.open(0)
    try:
        # Datagrams larger than UDP allows (to loopback): the kernel refuses, the bind counts it.
        assert bind.send_batch([(b"x" * 70000, ("::1", 9)), (b"y" * 70000, ("127.0.0.1", 9))]) == 2
        assert bind.send_errors == 2
    finally:
        bind.close()


def test_marks_from_two_to_the_31_are_set_and_read_back_unsigned() -> None:
    """Found by the `uapi_request` fuzz target: `fwmark=4294967295` was an internal error (EIO)."""
    bind = Bind.open(0, fwmark=0xFFFFFFFF)
    try:
        for sock in bind.sockets():
            assert sock.getsockopt(socket.SOL_SOCKET, SO_MARK) == -1  # the kernel's u32, read as an int
        bind.set_mark(0x80000000)
        fd4 = os.dup(bind.sock4.fileno())  # type: ignore[union-attr]
    finally:
        bind.close()
    adopted = Bind.from_fds(f"{fd4},-")
    try:
        assert adopted.fwmark == 0x80000000
    finally:
        adopted.close()
    s4, s6, _ = linux.bind_udp(0, 0xFFFFFFFE)
    for sock in (s4, s6):
        if sock is not None:
            assert sock.getsockopt(socket.SOL_SOCKET, SO_MARK) == -2
            sock.close()


def test_handed_over_sockets_are_adopted_with_their_mark() -> None:
    s4 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s4.bind(("0.0.0.0", 0))
    s4.setsockopt(socket.SOL_SOCKET, SO_MARK, 7)
    fd4 = os.dup(s4.fileno())
    s4.close()
    bind = Bind.from_fds(f"{fd4},-")
    try:
        assert bind.sock6 is None
        assert bind.port == bind.sock4.getsockname()[1]  # type: ignore[union-attr]
        assert bind.fwmark == 7
    finally:
        bind.close()


@pytest.mark.parametrize("spec", ["", "3", "x,-", "1,2,3"])
def test_bad_handover_spec_is_rejected(spec: str) -> None:
    with pytest.raises(BindError) as info:
        Bind.from_fds(spec)
    assert info.value.errno == errno.EINVAL


@pytest.mark.parametrize("family", [socket.AF_INET, socket.AF_INET6])
def test_gso_runs_arrive_as_separate_datagrams(family: int) -> None:
    host = "127.0.0.1" if family == socket.AF_INET else "::1"
    bind = Bind.open(0)
    peer = socket.socket(family, socket.SOCK_DGRAM)
    peer.bind((host, 0))
    peer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    peer.settimeout(5)
    try:
        to = (host, peer.getsockname()[1])
        full = [(bytes([i]) * 1452, to) for i in range(100)]
        batch = [*full[:50], (b"t" * 700, to), *full[50:], (b"\1" * 32, to), (b"\2" * 32, to)]
        assert bind.send_batch(batch) == 0
        assert bind.gso  # the kernel took the runs
        got = [peer.recv(2000) for _ in batch]
        assert got == [d for d, _ in batch]
    finally:
        peer.close()
        bind.close()


def test_gso_refused_by_the_route_falls_back_to_plain_sends() -> None:
    """A device MTU below the segment size makes the kernel refuse GSO; every datagram still goes out."""
    from tests.netns import namespaces, veth

    script = (
        "from wgdesk.engine.bind import Bind\n"
        "b = Bind.open(0)\n"
        "assert b.send_batch([(bytes(1452), ('10.55.0.2', 9))] * 20) == 0\n"
        "print(b.gso)\n"
    )
    with namespaces("wg", "wh") as (ns, other):
        _, far_end = veth(ns, other, ("10.55.0.1/24",), ("10.55.0.2/24",), mtu=1280)
        out = ns.exec(sys.executable, "-c", script, env={**os.environ, "PYTHONPATH": str(ROOT)}).stdout
        assert out.strip() == "False"
        rx = int(other.exec("cat", f"/sys/class/net/{far_end}/statistics/rx_packets").stdout)
        assert rx >= 40  # 20 datagrams, each fragmented in two


@pytest.mark.parametrize(("family", "host"), [(socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")])
def test_gro_receive_splits_coalesced_datagrams(family: int, host: str) -> None:
    """GSO sends over loopback reach a UDP_GRO socket coalesced; the bind hands them out one by one."""
    sender, receiver = Bind.open(0), Bind.open(0)
    try:
        assert receiver.gro
        sock = receiver.sock4 if family == socket.AF_INET else receiver.sock6
        assert sock is not None
        to = (host, receiver.port)
        batch = [(bytes([i]) * 1452, to) for i in range(40)] + [(b"end", to)]
        assert sender.send_batch(batch) == 0
        got: list[tuple[bytes, tuple[str, int]]] = []
        for _ in range(100):
            got += Bind.recv_batch(sock, 256, gro=True)
            if len(got) >= len(batch):
                break
        assert [d for d, _ in got] == [d for d, _ in batch]
        assert {a for _, a in got} == {(host, sender.port)}
    finally:
        sender.close()
        receiver.close()
