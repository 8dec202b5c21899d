"""The UAPI server: `/var/run/wireguard/IFNAME.sock`, served from the engine's own event loop.

The listening socket comes from `wgdesk.platforms.unix.uapi` (`listen`, `socket_path`), which the
helper uses too when it starts an engine.

Connections are non-blocking and share the loop's selector, so a `get` is answered between two
packet batches and never races the data path. Requests are framed here (one request ends with an
empty line); their meaning is `wgdesk.uapi`'s business, passed in as `handler`.
"""

from __future__ import annotations

import selectors
import socket
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path

from wgdesk.platforms.interface import UapiListener
from wgdesk.platforms.unix.uapi import SOCKET_DIRECTORY, UapiListenError, listen, socket_path

MAX_REQUEST = 33 << 20
"""Largest request buffered (a `set` with very many allowed IPs is a few MiB)."""

Handler = Callable[[bytes], tuple[str, bool]]
"""Takes one complete request (bytes up to and including its terminating empty line); returns the
reply and whether to hang up after sending it (a malformed request ends the conversation)."""


class _Connection:
    __slots__ = ("closing", "inbox", "outbox", "sock", "want_write")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.inbox = bytearray()
        self.outbox = bytearray()
        self.want_write = False
        self.closing = False


class UapiServer:
    """Accepts UAPI clients on `listener` and answers their requests through `handler`."""

    def __init__(
        self, listener: UapiListener, path: Path | None, handler: Handler, selector: selectors.BaseSelector
    ) -> None:
        self.listener = listener
        self.path = path
        self.handler = handler
        self.selector = selector
        self.connections: dict[int, _Connection] = {}
        self._inode = self._path_inode()
        listener.setblocking(False)
        selector.register(listener, selectors.EVENT_READ, self._accept)

    def _path_inode(self) -> int | None:
        if self.path is None:
            return None
        try:
            return self.path.stat().st_ino
        except OSError:
            return None

    def _accept(self, mask: int) -> None:
        for _ in range(16):
            try:
                sock, _ = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            sock.setblocking(False)
            conn = _Connection(sock)
            self.connections[sock.fileno()] = conn
            self.selector.register(sock, selectors.EVENT_READ, lambda m, c=conn: self._service(c, m))

    def _service(self, conn: _Connection, mask: int) -> None:
        if mask & selectors.EVENT_WRITE:
            self._flush(conn)
        if mask & selectors.EVENT_READ and not conn.closing:
            try:
                data = conn.sock.recv(65536)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                self._drop(conn)
                return
            if not data:
                self._drop(conn)
                return
            conn.inbox += data
            if len(conn.inbox) > MAX_REQUEST:
                self._drop(conn)
                return
            self._answer(conn)

    def _answer(self, conn: _Connection) -> None:
        while not conn.closing:
            end = _request_end(conn.inbox)
            if end < 0:
                return
            request = bytes(conn.inbox[:end])
            del conn.inbox[:end]
            reply, hang_up = self.handler(request)
            conn.outbox += reply.encode()
            conn.closing = hang_up
            self._flush(conn)
            if conn.sock.fileno() < 0:
                return

    def _flush(self, conn: _Connection) -> None:
        while conn.outbox:
            try:
                sent = conn.sock.send(conn.outbox)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                self._drop(conn)
                return
            del conn.outbox[:sent]
        if conn.closing and not conn.outbox:
            self._drop(conn)
            return
        want_write = bool(conn.outbox)
        if want_write != conn.want_write:
            conn.want_write = want_write
            events = selectors.EVENT_READ | (selectors.EVENT_WRITE if want_write else 0)
            self.selector.modify(conn.sock, events, lambda m, c=conn: self._service(c, m))

    def _drop(self, conn: _Connection) -> None:
        fd = conn.sock.fileno()
        if fd < 0:
            return
        with suppress(KeyError, ValueError):
            self.selector.unregister(conn.sock)
        self.connections.pop(fd, None)
        conn.sock.close()

    def close(self) -> None:
        """Close every connection and the listener; remove the socket file if it is still ours."""
        for conn in list(self.connections.values()):
            self._drop(conn)
        with suppress(KeyError, ValueError):
            self.selector.unregister(self.listener)
        self.listener.close()
        if self.path is not None and self._inode is not None and self._path_inode() == self._inode:
            with suppress(OSError):  # without privileges the socket directory may not be ours
                self.path.unlink()


def _request_end(buffer: bytearray) -> int:
    """Index just past the empty line that ends the first request in `buffer`, or -1."""
    if buffer[:1] == b"\n":
        return 1
    end = buffer.find(b"\n\n")
    return -1 if end < 0 else end + 2


__all__ = ["SOCKET_DIRECTORY", "Handler", "UapiListenError", "UapiServer", "listen", "socket_path"]
