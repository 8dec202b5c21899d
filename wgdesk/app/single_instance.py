"""One app per user session: a second ``wgdesk FILE…`` hands its files to the running instance and exits.

The instance listens on a local socket (a UNIX socket on Linux/macOS, a named pipe on Windows) named after the
user. A second process sends one JSON line, ``{"files": [absolute paths], "show": true}``, and waits for
``ok``. ``WGDESK_INSTANCE`` overrides the name (tests run several isolated instances side by side).
"""

from __future__ import annotations

import getpass
import json
import os
from pathlib import Path

from PySide6.QtCore import QObject, Signal, Slot
from PySide6.QtNetwork import QLocalServer, QLocalSocket

_MAX_MESSAGE = 256 * 1024
_TIMEOUT_MS = 3000


def server_name() -> str:
    """The per-user name of the local socket."""
    override = os.environ.get("WGDESK_INSTANCE")
    if override:
        return override
    try:
        user = getpass.getuser()
    except Exception:  # no user name (container without passwd entry)
        user = str(os.getuid()) if hasattr(os, "getuid") else "user"
    return f"wgdesk-{user}"


def hand_off(files: list[Path], name: str | None = None) -> bool:
    """Give *files* to a running instance. True when one answered; False when none runs."""
    sock = QLocalSocket()
    sock.connectToServer(name or server_name())
    if not sock.waitForConnected(_TIMEOUT_MS):
        return False
    message = json.dumps({"files": [str(f.resolve()) for f in files], "show": True}) + "\n"
    sock.write(message.encode())
    sock.flush()
    sock.waitForBytesWritten(_TIMEOUT_MS)
    answered = sock.waitForReadyRead(_TIMEOUT_MS) and bytes(sock.readAll().data()).startswith(b"ok")
    sock.disconnectFromServer()
    return answered


class InstanceServer(QObject):
    """Listens for later ``wgdesk`` processes of the same user."""

    filesReceived = Signal(list)  # list[Path]
    showRequested = Signal()

    def __init__(self, name: str | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._name = name or server_name()
        self._server = QLocalServer(self)
        self._server.setSocketOptions(QLocalServer.SocketOption.UserAccessOption)
        self._server.newConnection.connect(self._accept)
        self._buffers: dict[QLocalSocket, bytearray] = {}

    def listen(self) -> bool:
        """Start listening; removes a stale socket left by a crashed instance. False if another one runs.

        The running instance is asked first: with socket options set, Qt creates the socket beside its
        place and renames it there, so `listen` succeeds over a live instance and takes its name."""
        probe = QLocalSocket()
        probe.connectToServer(self._name)
        if probe.waitForConnected(500):
            probe.disconnectFromServer()
            return False
        if self._server.listen(self._name):
            return True
        QLocalServer.removeServer(self._name)
        return self._server.listen(self._name)

    def close(self) -> None:
        """Stop listening."""
        self._server.close()

    @Slot()
    def _accept(self) -> None:
        while self._server.hasPendingConnections():
            sock = self._server.nextPendingConnection()
            self._buffers[sock] = bytearray()
            sock.readyRead.connect(lambda s=sock: self._read(s))
            sock.disconnected.connect(lambda s=sock: self._drop(s))

    def _drop(self, sock: QLocalSocket) -> None:
        self._buffers.pop(sock, None)
        sock.deleteLater()

    def _read(self, sock: QLocalSocket) -> None:
        buffer = self._buffers.get(sock)
        if buffer is None:
            return
        buffer += bytes(sock.readAll().data())
        if len(buffer) > _MAX_MESSAGE:
            sock.abort()
            return
        if b"\n" not in buffer:
            return
        line = bytes(buffer).split(b"\n", 1)[0]
        try:
            message = json.loads(line)
            files = [Path(f) for f in message.get("files", []) if isinstance(f, str)]
        except (ValueError, AttributeError):
            sock.abort()
            return
        sock.write(b"ok\n")
        sock.flush()
        if message.get("show"):
            self.showRequested.emit()
        if files:
            self.filesReceived.emit(files)
