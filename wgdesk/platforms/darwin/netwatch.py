"""Following network changes on macOS for the helper: ``route -n monitor`` in a thread, and when a
message may have moved the default route (`routes.RouteMonitor`), the actions that keep a tunnel
right: move the endpoint host routes to the new gateway, write the tunnel's DNS again where configd
replaced it. A burst of messages (a Wi-Fi join sends dozens) runs the actions once, after half a
second of quiet.

Started by the backend the first time a full tunnel or tunnel DNS is set, never in the app. The
engine follows changes too (its UDP sockets' interface, `boundif`), with `RoutingSocketWatch`: the
same, over a routing socket of its own rather than a ``route`` process.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import selectors
import socket
import struct
import subprocess
import threading
from collections.abc import Callable, Iterable, Sequence

from wgdesk.platforms.darwin.routes import RELEVANT, RouteMonitor
from wgdesk.platforms.darwin.runner import CLEAN_ENV, ROUTE

QUIET = 0.5
"""Seconds without a routing message before the actions run."""

log = logging.getLogger(__name__)


class NetworkWatch:
    """Runs ``actions`` after each burst of relevant routing messages."""

    def __init__(
        self, actions: Sequence[Callable[[], object]], argv: Sequence[str] = (ROUTE, "-n", "monitor")
    ) -> None:
        self.actions = list(actions)
        self.argv = list(argv)
        self.monitor = RouteMonitor()
        self.runs = 0
        self._thread: threading.Thread | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._stop = threading.Event()
        self._partial = b""

    def follow(self, lines: Iterable[str]) -> None:
        """Feed ``lines`` (no waiting): the actions run once per relevant message (tests)."""
        for line in lines:
            if self.monitor.feed(line):
                self.run_actions()

    def run_actions(self) -> None:
        self.runs += 1
        for action in self.actions:
            try:
                action()
            except Exception:  # a failed re-apply is logged; the next change tries again
                log.exception("re-applying after a network change failed")

    def start(self) -> None:
        """Start following (once); harmless when the source cannot be opened (logged)."""
        if self._thread is not None:
            return
        try:
            fd = self._open()
        except OSError as exc:
            log.warning("cannot follow network changes (%s): nothing is re-applied after one", exc)
            return
        self._thread = threading.Thread(target=self._run, args=(fd,), name="wgdesk-netwatch", daemon=True)
        self._thread.start()

    def _open(self) -> int:
        """The descriptor the messages come from (here: ``route -n monitor``'s output)."""
        self._proc = subprocess.Popen(
            self.argv, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, env=dict(CLEAN_ENV)
        )
        assert self._proc.stdout is not None
        return self._proc.stdout.fileno()

    def _feed(self, data: bytes) -> bool:
        """Whether ``data`` (what one read returned) holds a relevant message."""
        *lines, self._partial = (self._partial + data).split(b"\n")
        relevant = False
        for line in lines:
            relevant = self.monitor.feed(line.decode("utf-8", "replace")) or relevant
        return relevant

    def _run(self, fd: int) -> None:
        selector = selectors.DefaultSelector()
        selector.register(fd, selectors.EVENT_READ)
        pending = False
        while not self._stop.is_set():
            if not selector.select(QUIET if pending else None):
                pending = False  # quiet after a burst
                self.run_actions()
                continue
            try:
                data = os.read(fd, 65536)
            except OSError:
                return  # closed by stop
            if not data:
                return
            pending = self._feed(data) or pending

    def stop(self) -> None:
        self._stop.set()
        if self._proc is not None:
            self._proc.terminate()
            self._proc.wait(5)


AF_ROUTE = 17
"""``<sys/socket.h>`` on macOS (Linux's 17 is ``AF_PACKET``: never opened there, see `RoutingSocketWatch`)."""
RTM_VERSION = 5
"""``<net/route.h>``: the version every routing message of this kernel carries."""
RTM_TYPES = {
    "RTM_ADD": 0x1,
    "RTM_DELETE": 0x2,
    "RTM_CHANGE": 0x3,
    "RTM_NEWADDR": 0xC,
    "RTM_DELADDR": 0xD,
    "RTM_IFINFO": 0xE,
}
"""``<net/route.h>`` message types, of the kinds in `routes.RELEVANT`."""
_HEADER = struct.Struct("=HBB")
"""The start of every routing message: ``rtm_msglen`` (u_short), ``rtm_version``, ``rtm_type`` (u_char)."""


def relevant_messages(data: bytes) -> int:
    """How many messages in ``data`` (one read of a routing socket) may have moved the default route.
    A short or malformed message ends the scan; nothing here raises."""
    wanted = {RTM_TYPES[kind] for kind in RELEVANT}
    found = offset = 0
    while offset + _HEADER.size <= len(data):
        length, version, kind = _HEADER.unpack_from(data, offset)
        if length < _HEADER.size:
            break
        if version == RTM_VERSION and kind in wanted:
            found += 1
        offset += length
    return found


class RoutingSocketWatch(NetworkWatch):
    """`NetworkWatch` over a routing socket of its own instead of ``route -n monitor`` (the engine's:
    no child process to outlive it). Reading one needs no privileges. ``opener`` makes the socket
    (tests: one end of a socketpair); on anything but macOS there is none to open."""

    def __init__(
        self, actions: Sequence[Callable[[], object]], opener: Callable[[], socket.socket] | None = None
    ) -> None:
        super().__init__(actions)
        self.opener = opener or self._routing_socket
        self._sock: socket.socket | None = None

    @staticmethod
    def _routing_socket() -> socket.socket:
        """``socket(AF_ROUTE, SOCK_RAW, 0)``, where this system's AF_ROUTE is macOS's (on Linux it is
        16, netlink; 17 would open a packet socket there)."""
        if getattr(socket, "AF_ROUTE", None) != AF_ROUTE:
            raise OSError(errno.EAFNOSUPPORT, "no BSD routing socket on this system")
        return socket.socket(AF_ROUTE, socket.SOCK_RAW, 0)

    def follow_messages(self, data: bytes) -> None:
        """Feed one read's worth of messages (no waiting): the actions run once per relevant one."""
        for _ in range(relevant_messages(data)):
            self.monitor.messages += 1
            self.run_actions()

    def _open(self) -> int:
        self._sock = self.opener()
        return self._sock.fileno()

    def _feed(self, data: bytes) -> bool:
        found = relevant_messages(data)
        self.monitor.messages += found
        return found > 0

    def stop(self) -> None:
        """Wake the thread (a shut-down socket reads as its end), wait for it, then close."""
        self._stop.set()
        if self._sock is None:
            return
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(2)
        self._sock.close()
