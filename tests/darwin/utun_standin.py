"""A utun stand-in on Linux: the real engine on a `DarwinTun` whose "kernel" is a bridge to a TUN.

``python -m tests.darwin.utun_standin ENGINE -f NAME`` (the launcher of `tests.interop.wgnet`, run
inside a test namespace) creates the Linux TUN ``NAME`` (no packet information), an ``AF_UNIX``
``SOCK_DGRAM`` socketpair, and forks a bridge process that plays macOS's utun: each packet read from
the TUN goes into the socketpair behind the 4-byte address family macOS uses (``AF_INET`` 2,
``AF_INET6`` 30); each datagram from the engine must carry the right header for its IP version — a
wrong one is dropped and counted, so a header bug loses traffic the test sees. The bridge exits when
the engine does (its socket or the parent's pipe closes), and the TUN then disappears, as a utun
does with its last descriptor.

The engine end is handed to the real `wgdesk.engine.main` in ``WG_TUN_FD``, and the backend's tun
driver is the macOS one's `DarwinTun` over it (with Linux's MTU ioctls for the bridged TUN's name).
``ENGINE`` (the wgdesk-engine path the harness puts first) is not executed: the engine runs here.
"""

from __future__ import annotations

import os
import selectors
import socket
import struct
import sys

from wgdesk.platforms.darwin.utun import DarwinTun, IfreqIoctls
from wgdesk.platforms.linux.tun import SIOCGIFMTU, SIOCSIFMTU, open_tun

LINUX_IOCTLS = IfreqIoctls(get_mtu=SIOCGIFMTU, set_mtu=SIOCSIFMTU, ifreq_size=40)
HEADERS = {4: struct.pack("!I", 2), 6: struct.pack("!I", 30)}
"""macOS's AF_INET and AF_INET6 (<sys/socket.h>), written out here on purpose: the bridge checks the
engine's headers against the OS's values, not against the module under test."""
BUFFER = 4 << 20


class StandinDriver:
    """The engine's tun driver here: adopts the socketpair end as a `DarwinTun` named after the TUN."""

    def __init__(self, name: str) -> None:
        self.name = name

    def create(self, name: str, mtu: int, vnet_hdr: bool) -> DarwinTun:
        raise AssertionError("the stand-in hands the engine its descriptor (WG_TUN_FD)")

    def adopt(self, fd: int) -> DarwinTun:
        return DarwinTun(fd, self.name, LINUX_IOCTLS)


def bridge(tun_fd: int, sock: socket.socket, parent_gone: int) -> int:
    """Copy packets both ways until the engine or the parent goes; returns packets dropped for a
    wrong header."""
    selector = selectors.DefaultSelector()
    selector.register(tun_fd, selectors.EVENT_READ, "tun")
    selector.register(sock, selectors.EVENT_READ, "sock")
    selector.register(parent_gone, selectors.EVENT_READ, "parent")
    wrong = 0
    while True:
        for key, _ in selector.select():
            try:
                if key.data == "tun":
                    packet = os.read(tun_fd, 65536)
                    header = HEADERS.get(packet[0] >> 4) if packet else None
                    if header is not None:
                        sock.send(header + packet)
                elif key.data == "sock":
                    data = sock.recv(65536 + 4)
                    if not data:
                        return wrong
                    if len(data) > 4 and HEADERS.get(data[4] >> 4) == data[:4]:
                        os.write(tun_fd, data[4:])
                    else:
                        wrong += 1
                        print(
                            f"utun stand-in: dropped a packet with header {data[:4].hex()}", file=sys.stderr
                        )
                else:
                    return wrong
            except BlockingIOError:
                continue
            except (ConnectionError, OSError) as exc:
                print(f"utun stand-in: bridge ends: {exc}", file=sys.stderr)
                return wrong


def main(argv: list[str]) -> int:
    if len(argv) != 3 or argv[1] != "-f":
        print("usage: python -m tests.darwin.utun_standin ENGINE -f NAME", file=sys.stderr)
        return 2
    name = argv[2]
    tun_fd = open_tun(name, nonblocking=True)
    engine_end, bridge_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    for s in (engine_end, bridge_end):
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, BUFFER)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, BUFFER)
    parent_gone, parent_alive = os.pipe()
    child = os.fork()
    if child == 0:
        engine_end.close()
        os.close(parent_alive)
        bridge_end.setblocking(False)
        os._exit(1 if bridge(tun_fd, bridge_end, parent_gone) else 0)
    os.close(tun_fd)
    os.close(parent_gone)
    bridge_end.close()
    os.set_inheritable(parent_alive, False)

    from wgdesk import platforms
    from wgdesk.engine.main import main as engine_main

    platforms.backend().tun = StandinDriver(name)  # type: ignore[misc]
    os.environ["WG_TUN_FD"] = str(engine_end.detach())
    try:
        return engine_main(["-f", name])
    finally:
        os.close(parent_alive)
        _, status = os.waitpid(child, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            print("utun stand-in: the bridge dropped packets with a wrong header", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
