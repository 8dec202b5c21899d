"""Following network changes on macOS: a routing socket of our own, read in a thread, and when a
message may have moved the default route, the actions that keep a tunnel right. A burst of messages (a
Wi-Fi join sends dozens) runs the actions once, after half a second of quiet.

Two users, each with its own watch: the helper (started by the backend the first time a full tunnel or
tunnel DNS is set: move the endpoint host routes to the new gateway, write the tunnel's DNS again where
configd replaced it) and the engine (its UDP sockets' interface, `boundif`). Never the app.

``socket(AF_ROUTE, SOCK_RAW, 0)`` needs no privileges and, unlike ``route -n monitor``, no child process
that could outlive its parent or change its wording. Every routing message starts with ``rt_msghdr``'s
``rtm_msglen`` (u_short), ``rtm_version`` and ``rtm_type`` (u_char) — the same for ``ifa_msghdr`` and
``if_msghdr`` (``<net/route.h>``, ``<net/if.h>``) — which is all that is read: whether to look again.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import selectors
import socket
import struct
import threading
from collections.abc import Callable, Sequence

QUIET = 0.5
"""Seconds without a routing message before the actions run."""

AF_ROUTE = 17
"""``<sys/socket.h>`` on macOS (Linux's 17 is ``AF_PACKET``: never opened there, see `NetworkWatch`)."""
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
"""``<net/route.h>``: the message types that may move the default route (a route added, deleted or
changed; an address or an interface's state changed). Not ``RTM_LOSING``, ``RTM_MISS``,
``RTM_NEWMADDR`` and the rest."""
_HEADER = struct.Struct("=HBB")
"""The start of every routing message: ``rtm_msglen`` (u_short), ``rtm_version``, ``rtm_type`` (u_char)."""

log = logging.getLogger(__name__)


def relevant_messages(data: bytes) -> int:
    """How many messages in ``data`` (one read of a routing socket) may have moved the default route.
    A short or malformed message ends the scan; nothing here raises."""
    wanted = set(RTM_TYPES.values())
    found = offset = 0
    while offset + _HEADER.size <= len(data):
        length, version, kind = _HEADER.unpack_from(data, offset)
        if length < _HEADER.size:
            break
        if version == RTM_VERSION and kind in wanted:
            found += 1
        offset += length
    return found


def routing_socket() -> socket.socket:
    """``socket(AF_ROUTE, SOCK_RAW, 0)``, where this system's AF_ROUTE is macOS's (on Linux it is 16,
    netlink; 17 would open a packet socket there)."""
    if getattr(socket, "AF_ROUTE", None) != AF_ROUTE:
        raise OSError(errno.EAFNOSUPPORT, "no BSD routing socket on this system")
    return socket.socket(AF_ROUTE, socket.SOCK_RAW, 0)


class NetworkWatch:
    """Runs ``actions`` after each burst of routing messages that may have moved the default route.

    Args:
        actions: called in order on the watch's thread; one that raises is logged and the rest run.
        opener: makes the routing socket (None: `routing_socket`; tests: one end of a socketpair).
    """

    def __init__(
        self,
        actions: Sequence[Callable[[], object]],
        opener: Callable[[], socket.socket] | None = None,
    ) -> None:
        self.actions = list(actions)
        self.opener = opener or routing_socket
        self.messages = 0
        """Relevant messages read so far."""
        self.runs = 0
        """How many times the actions ran."""
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None
        self._stop = threading.Event()

    def follow_messages(self, data: bytes) -> None:
        """Feed one read's worth of messages (no thread, no waiting): the actions run once per relevant
        message (tests)."""
        for _ in range(relevant_messages(data)):
            self.messages += 1
            self.run_actions()

    def run_actions(self) -> None:
        for action in self.actions:
            try:
                action()
            except Exception:  # a failed re-apply is logged; the next change tries again
                log.exception("re-applying after a network change failed")
        self.runs += 1  # after the actions: whoever waits for a run sees what it did

    def start(self) -> None:
        """Start following (once); harmless when the socket cannot be opened (logged)."""
        if self._thread is not None:
            return
        try:
            self._sock = self.opener()
        except OSError as exc:
            log.warning("cannot follow network changes (%s): nothing is re-applied after one", exc)
            return
        self._thread = threading.Thread(
            target=self._run, args=(self._sock.fileno(),), name="wgdesk-netwatch", daemon=True
        )
        self._thread.start()

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
            found = relevant_messages(data)
            self.messages += found
            pending = pending or found > 0

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
