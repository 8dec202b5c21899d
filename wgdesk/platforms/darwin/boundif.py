"""Keeping the engine's UDP on the physical interface on macOS, across network changes.

A full tunnel routes ``0.0.0.0/1`` and ``128.0.0.0/1`` (``::/1``, ``8000::/1``) into the utun; the
endpoint host routes keep the engine's packets out of it only while they point at the right gateway.
So the engine's UDP sockets are tied to the interface of the default route with ``IP_BOUND_IF``
(``<netinet/in.h>``: 25) and ``IPV6_BOUND_IF`` (``<netinet6/in6.h>``: 125), which take an interface
index (0 unties the socket). That interface changes — Wi-Fi to Ethernet, a hotspot — and a socket
tied to the old one sends nowhere. wireguard-apple's answer is to watch the network path and rebind
the sockets; wireguard-windows re-pins on every route change. Here the engine does the same in its
`wgdesk.platforms.interface.UdpGuard`: `BoundIfPinning` ties each new pair of sockets when the engine
opens them (`bound`, also after a new ``listen_port``) and again after every burst of routing
messages that may have moved the default route (`recheck`, run by `netwatch.RoutingSocketWatch`
over a routing socket of the engine's own, which needs no privileges).

Which interface: ``route -n get [-inet6] default`` (`DefaultInterfaces`), unless that is a utun (ours,
or another VPN's): then the sockets are untied and the endpoint host routes alone keep them out.
``setsockopt`` on a socket the engine's loop is using is safe, so the loop is not involved; a failure
(the interface vanished between the answer and the call) is logged and counted, never raised: the next
change tries again and the engine keeps running.

Nothing here has run on a Mac (docs/macos.md).
"""

from __future__ import annotations

import logging
import socket
import struct
import threading
from collections.abc import Callable
from typing import Protocol

from wgdesk.platforms.darwin.netwatch import RoutingSocketWatch
from wgdesk.platforms.darwin.routes import parse_route_get
from wgdesk.platforms.darwin.runner import ROUTE, Runner
from wgdesk.platforms.interface import BoundSockets

IP_BOUND_IF = 25
"""``<netinet/in.h>``: ``int; set/get bound interface``."""
IPV6_BOUND_IF = 125
"""``<netinet6/in6.h>``: ``int; set/get bound interface``."""
UNBOUND = 0
"""The index that unties a socket (``IFSCOPE_NONE``)."""
FAMILIES = (socket.AF_INET, socket.AF_INET6)

log = logging.getLogger(__name__)


def bound_if_option(family: int, index: int) -> tuple[int, int, bytes]:
    """The ``setsockopt`` (level, option, value) that ties a socket of ``family`` to ``index``: an
    ``int`` in host order for both families (unlike Windows' ``IP_UNICAST_IF``)."""
    value = struct.pack("=I", index)
    if family == socket.AF_INET:
        return (socket.IPPROTO_IP, IP_BOUND_IF, value)
    return (socket.IPPROTO_IPV6, IPV6_BOUND_IF, value)


class DefaultSource(Protocol):
    """Where each family's default route leaves (tests: a fake network)."""

    def index(self, family: int) -> int | None:
        """The interface index of ``family``'s default route; None when there is none or it is a
        tunnel's."""
        ...


class DefaultInterfaces:
    """`DefaultSource` from ``route -n get default`` / ``route -n get -inet6 default``."""

    def __init__(self, runner: Runner, index_of: Callable[[str], int] = socket.if_nametoindex) -> None:
        self.runner = runner
        self.index_of = index_of

    @staticmethod
    def argv(family: int) -> list[str]:
        inet6 = ["-inet6"] if family == socket.AF_INET6 else []
        return [ROUTE, "-n", "get", *inet6, "default"]

    def name(self, family: int) -> str | None:
        """The default route's interface name, unless it is a utun."""
        proc = self.runner(self.argv(family), check=False)
        interface = parse_route_get(proc.stdout).get("interface", "") if proc.returncode == 0 else ""
        if not interface or interface.startswith("utun"):
            return None
        return interface

    def index(self, family: int) -> int | None:
        interface = self.name(family)
        if interface is None:
            return None
        try:
            return self.index_of(interface)
        except OSError:
            return None  # gone since route answered


SetSockopt = Callable[[socket.socket, int, int, bytes], None]


def _setsockopt(sock: socket.socket, level: int, option: int, value: bytes) -> None:
    sock.setsockopt(level, option, value)


class BoundIfPinning:
    """`wgdesk.platforms.interface.UdpGuard` on macOS: the engine's sockets tied to the default
    route's physical interface, now and after every network change. ``follow``: start the watch (the
    engine); tests feed ``watch.follow_messages`` themselves or give an ``opener`` (the routing
    socket's stand-in). ``setsockopt`` is the OS boundary (tests record it: the options do not exist
    on Linux)."""

    def __init__(
        self,
        source: DefaultSource,
        setsockopt: SetSockopt = _setsockopt,
        follow: bool = True,
        opener: Callable[[], socket.socket] | None = None,
    ) -> None:
        self.source = source
        self.setsockopt = setsockopt
        self.lock = threading.Lock()
        self.sockets: BoundSockets | None = None
        self.current: dict[int, int | None] = {}
        self.failures = 0
        """``setsockopt`` calls that failed (logged; retried at the next change)."""
        self.watch = RoutingSocketWatch([self.recheck], opener)
        if follow:
            self.watch.start()

    def bound(self, sockets: BoundSockets) -> None:
        """Tie ``sockets`` (the engine's new ones) now and from now on. Known answers are used as
        they are (the watch keeps them current), so a new ``listen_port`` does not wait for ``route``
        in the engine's loop; only the first pair, or a family whose last tie failed, asks."""
        with self.lock:
            self.sockets = sockets
            for family in FAMILIES:
                if family not in self.current:
                    self.current[family] = self.source.index(family)
                self._pin(family)

    def recheck(self) -> None:
        """After a network change: tie the sockets again where the default interface moved."""
        with self.lock:
            for family in FAMILIES:
                index = self.source.index(family)
                if family not in self.current or index != self.current[family]:
                    self.current[family] = index
                    self._pin(family)

    def _pin(self, family: int, /) -> None:
        if self.sockets is None:
            return
        sock = self.sockets.sock4 if family == socket.AF_INET else self.sockets.sock6
        if sock is None:
            return
        index = self.current.get(family)
        level, option, value = bound_if_option(family, UNBOUND if index is None else index)
        try:
            self.setsockopt(sock, level, option, value)
        except OSError as exc:
            self.failures += 1
            log.warning("cannot tie the UDP socket to interface %s: %s", index, exc.strerror or exc)
            self.current.pop(family, None)  # differs from any answer: the next change tries again

    def close(self) -> None:
        self.watch.stop()
