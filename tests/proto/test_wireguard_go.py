"""Byte-level interoperability of `proto.Device` with a real wireguard-go, both directions.

wireguard-go runs in a namespace this test creates; our Device talks to it over a UDP socket opened
inside that namespace (loopback only). Nothing here touches the test runner's own namespace.
"""

from __future__ import annotations

import ctypes
import ipaddress
import os
import shutil
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.netns import Namespace, namespaces, socket_path, unique_name, wait_for
from wgdesk.proto import Device, DeviceChange, PeerChange
from wgdesk.proto.keys import from_base64, to_base64

pytestmark = pytest.mark.root

WG = shutil.which("wg") or "/usr/bin/wg"
WIREGUARD_GO = shutil.which("wireguard-go") or "/usr/bin/wireguard-go"
CLONE_NEWNET = 0x40000000
OUR_INNER, THEIR_INNER = "10.77.0.1", "10.77.0.2"
THEIR_PORT = 51820


def socket_in(ns: Namespace) -> socket.socket:
    """A UDP socket bound to 127.0.0.1 inside `ns` (setns on a throwaway thread)."""
    made: list[socket.socket] = []
    errors: list[BaseException] = []

    def enter() -> None:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            fd = os.open(f"/var/run/netns/{ns.name}", os.O_RDONLY)
            try:
                if libc.setns(fd, CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), "setns failed")
            finally:
                os.close(fd)
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind(("127.0.0.1", 0))
            made.append(s)
        except BaseException as exc:  # reported in the calling thread
            errors.append(exc)

    t = threading.Thread(target=enter)
    t.start()
    t.join()
    if errors:
        raise errors[0]
    return made[0]


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def icmp_echo(src: str, dst: str, kind: int, ident: int, seq: int, payload: bytes) -> bytes:
    icmp = struct.pack("!BBHHH", kind, 0, 0, ident, seq) + payload
    icmp = icmp[:2] + struct.pack("!H", checksum(icmp)) + icmp[4:]
    header = struct.pack(
        "!BBHHHBBH4s4s",
        0x45, 0, 20 + len(icmp), 0, 0, 64, 1, 0,
        ipaddress.IPv4Address(src).packed, ipaddress.IPv4Address(dst).packed,
    )  # fmt: skip
    header = header[:10] + struct.pack("!H", checksum(header)) + header[12:]
    return header + icmp


class Driver:
    """A minimal event loop around a Device and one socket (real clock)."""

    def __init__(self, sock: socket.socket, private_key: bytes, their_pub: bytes, psk: bytes) -> None:
        self.sock = sock
        sock.settimeout(0.02)
        self.dev = Device(os.urandom, time.time)
        self.dev.apply(
            DeviceChange(
                private_key=private_key,
                peers=(
                    PeerChange(
                        their_pub,
                        preshared_key=psk,
                        endpoint=("127.0.0.1", THEIR_PORT),
                        allowed_ips=(ipaddress.ip_network(f"{THEIR_INNER}/32"),),
                    ),
                ),
            ),
            time.monotonic(),
        )

    def pump(self, seconds: float) -> Iterator[bytes]:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            for data, addr in self.dev.datagrams_to_send():
                self.sock.sendto(data, addr)
            try:
                data, addr = self.sock.recvfrom(65535)
                self.dev.receive_datagram(data, addr, time.monotonic())
            except TimeoutError:
                pass
            deadline = self.dev.get_timer()
            if deadline is not None and deadline <= time.monotonic():
                self.dev.handle_timer(time.monotonic())
            yield from self.dev.packets_to_tun()


def wg_dump_peer(ns: Namespace, ifname: str) -> list[str]:
    lines = ns.exec(WG, "show", ifname, "dump").stdout.splitlines()
    return lines[1].split("\t")


@pytest.fixture
def wireguard_go(tmp_path: Path) -> Iterator[tuple[Namespace, str, bytes, bytes, bytes]]:
    ours = subprocess.run([WG, "genkey"], capture_output=True, text=True, check=True).stdout.strip()
    theirs = subprocess.run([WG, "genkey"], capture_output=True, text=True, check=True).stdout.strip()
    psk = subprocess.run([WG, "genpsk"], capture_output=True, text=True, check=True).stdout.strip()
    their_pub = subprocess.run(
        [WG, "pubkey"], input=theirs, capture_output=True, text=True, check=True
    ).stdout
    (tmp_path / "key").write_text(theirs)
    (tmp_path / "psk").write_text(psk)
    with namespaces("wgp") as (ns,):
        ifname = unique_name("wgp")
        env = dict(os.environ, WG_PROCESS_FOREGROUND="1")
        ns.popen(WIREGUARD_GO, "-f", ifname, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        assert wait_for(lambda: socket_path(ifname).exists()), "wireguard-go did not start"
        ns.exec(WG, "set", ifname, "private-key", str(tmp_path / "key"), "listen-port", str(THEIR_PORT))
        ns.exec("ip", "addr", "add", f"{THEIR_INNER}/24", "dev", ifname)
        ns.exec("ip", "link", "set", ifname, "up")
        yield ns, ifname, from_base64(ours), from_base64(their_pub.strip()), from_base64(psk)


def add_our_peer(ns: Namespace, ifname: str, our_pub: bytes, port: int, psk_file: Path) -> None:
    ns.exec(
        WG, "set", ifname, "peer", to_base64(our_pub), "preshared-key", str(psk_file),
        "allowed-ips", f"{OUR_INNER}/32", "endpoint", f"127.0.0.1:{port}",
    )  # fmt: skip


def test_we_initiate_and_exchange_data(
    wireguard_go: tuple[Namespace, str, bytes, bytes, bytes], tmp_path: Path
) -> None:
    ns, ifname, our_key, their_pub, psk = wireguard_go
    sock = socket_in(ns)
    try:
        drv = Driver(sock, our_key, their_pub, psk)
        our_pub = drv.dev.snapshot(0).public_key
        assert our_pub is not None
        add_our_peer(ns, ifname, our_pub, sock.getsockname()[1], tmp_path / "psk")
        replies = 0
        for seq in range(3):
            payload = os.urandom(200 + seq)
            drv.dev.send_packet(icmp_echo(OUR_INNER, THEIR_INNER, 8, 77, seq, payload), time.monotonic())
            for pkt in drv.pump(0.6):
                if pkt[9] == 1 and pkt[20] == 0 and pkt[28:] == payload:
                    replies += 1
        assert replies == 3
        snap = drv.dev.snapshot(time.monotonic()).peers[0]
        dump = wg_dump_peer(ns, ifname)
        # wg show dump: public-key psk endpoint allowed-ips latest-handshake rx tx keepalive
        assert int(dump[4]) > 0 and snap.last_handshake is not None
        assert (int(dump[5]), int(dump[6])) == (snap.tx_bytes, snap.rx_bytes)
    finally:
        sock.close()


def test_they_initiate_and_we_answer(
    wireguard_go: tuple[Namespace, str, bytes, bytes, bytes], tmp_path: Path
) -> None:
    ns, ifname, our_key, their_pub, psk = wireguard_go
    sock = socket_in(ns)
    try:
        drv = Driver(sock, our_key, their_pub, psk)
        our_pub = drv.dev.snapshot(0).public_key
        assert our_pub is not None
        add_our_peer(ns, ifname, our_pub, sock.getsockname()[1], tmp_path / "psk")
        ping = subprocess.Popen(
            ns.argv("ping", "-c", "3", "-i", "0.3", "-W", "2", OUR_INNER),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        answered = 0
        deadline = time.monotonic() + 8
        while ping.poll() is None and time.monotonic() < deadline:
            for pkt in drv.pump(0.1):
                if pkt[9] == 1 and pkt[20] == 8:
                    src = str(ipaddress.IPv4Address(pkt[12:16]))
                    ident, seq = struct.unpack("!HH", pkt[24:28])
                    reply = icmp_echo(OUR_INNER, src, 0, ident, seq, pkt[28:])
                    drv.dev.send_packet(reply, time.monotonic())
                    answered += 1
        assert ping.wait(5) == 0, "wireguard-go's ping got no replies through our Device"
        assert answered >= 3
        kinds = {type(e).__name__ for e in iter(drv.dev.next_event, None)}
        assert {"HandshakeResponseSent", "HandshakeCompleted"} <= kinds
    finally:
        sock.close()
