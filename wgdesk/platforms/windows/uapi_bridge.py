"""An engine's UAPI pipe served by the engine's own selector loop.

The engine answers UAPI from its event loop (`wgdesk.engine.uapi_server`), which on Windows can
watch sockets only. So, as for Wintun's read event (`wgdesk.platforms.windows.tun`), a thread does
the waiting: it accepts clients on the pipe (`wgdesk.platforms.windows.pipe_connection.PipeListener`,
wireguard-go's path and descriptor), pairs each with a socket pair, and copies bytes between the pipe
and its socket end in two small threads. The loop sees `UapiBridge` as its listening socket: it is
readable while a client is waiting, and ``accept`` hands over the other socket end — from then on the
UAPI server reads and writes a plain socket, exactly as on Linux and macOS.
"""

from __future__ import annotations

import queue
import socket
import threading
from contextlib import suppress

from wgdesk.platforms.windows import pipes
from wgdesk.platforms.windows.pipe_connection import PipeConnection, PipeListener, Win32

CHUNK = 65536


class UapiBridge:
    """A listening-socket look-alike for `wgdesk.engine.uapi_server.UapiServer`: ``fileno``,
    ``setblocking``, ``accept`` and ``close``."""

    def __init__(self, ifname: str, w: Win32) -> None:
        self.listener = PipeListener(lambda first: pipes.uapi_pipe(ifname, first), w)
        self._ready: queue.SimpleQueue[socket.socket] = queue.SimpleQueue()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._closed = threading.Event()
        self.accepted = 0
        self._thread = threading.Thread(target=self._serve, name=f"uapi-{ifname}", daemon=True)
        self._thread.start()

    # -- the accepting thread -------------------------------------------------------------------------

    def _serve(self) -> None:
        while not self._closed.is_set():
            try:
                client = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # closed
            ours, theirs = socket.socketpair()
            threading.Thread(target=_pipe_to_socket, args=(client, ours), daemon=True).start()
            threading.Thread(target=_socket_to_pipe, args=(ours, client), daemon=True).start()
            self._ready.put(theirs)
            self.accepted += 1
            with suppress(OSError):
                self._wake_w.send(b"\0")

    # -- what the loop calls --------------------------------------------------------------------------

    def fileno(self) -> int:
        return self._wake_r.fileno()

    def setblocking(self, flag: bool) -> None:
        """Always non-blocking (`accept` raises `BlockingIOError` when no client waits)."""

    def accept(self) -> tuple[socket.socket, str]:
        try:
            sock = self._ready.get_nowait()
        except queue.Empty:
            raise BlockingIOError("no UAPI client waiting") from None
        with suppress(BlockingIOError):
            self._wake_r.recv(1)
        return sock, ""

    def close(self) -> None:
        self._closed.set()
        self.listener.close()
        self._thread.join(2)
        self._wake_r.close()
        self._wake_w.close()
        while True:
            try:
                self._ready.get_nowait().close()
            except queue.Empty:
                return


def _pipe_to_socket(client: PipeConnection, sock: socket.socket) -> None:
    try:
        while data := client.recv(CHUNK):
            sock.sendall(data)
    except OSError:
        pass
    with suppress(OSError):
        sock.shutdown(socket.SHUT_WR)  # the client is done: the server sees EOF


def _socket_to_pipe(sock: socket.socket, client: PipeConnection) -> None:
    try:
        while data := sock.recv(CHUNK):
            client.sendall(data)
    except OSError:
        pass
    client.close()  # the server hung up (or the client went): end both directions
    sock.close()
