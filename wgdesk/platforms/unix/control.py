"""The helper's control socket as a UNIX stream socket: ``/run/wgdesk/helper.sock`` (Linux),
``/var/run/wgdesk/helper.sock`` (macOS), 0660 root:GROUP in a root-owned directory.

Every connection is authorised from the kernel's credentials of its peer (``SO_PEERCRED`` on Linux,
``LOCAL_PEERCRED`` on macOS: the backend passes the function that reads them) before a byte is read.
"""

from __future__ import annotations

import os
import socket
import struct
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path

from wgdesk.platforms.interface import Connection, EndpointInUse, PeerIdentity

AF_UNIX: int = getattr(socket, "AF_UNIX", -1)
"""Absent on Windows (mypy --platform win32 checks the client, which imports this module there)."""

ACCEPT_TIMEOUT = 0.5
"""Seconds `UnixListener.accept` waits before it raises TimeoutError (the server looks at its stop flag)."""


class UnixListener:
    """A listening control socket (a `wgdesk.platforms.interface.Listener`)."""

    def __init__(self, sock: socket.socket, path: Path) -> None:
        self.sock = sock
        self.path = path

    def accept(self) -> socket.socket:
        conn, _ = self.sock.accept()
        return conn

    def close(self) -> None:
        with suppress(OSError):
            self.sock.close()
        with suppress(FileNotFoundError):
            self.path.unlink()


class UnixControlEndpoint:
    """A `wgdesk.platforms.interface.ControlEndpoint` of UNIX sockets."""

    def __init__(self, default: str, peer: Callable[[socket.socket], PeerIdentity]) -> None:
        self._default = default
        self._peer = peer

    def default_address(self) -> str:
        return self._default

    def bind(self, address: str, group: int | None, open_to_all: bool) -> UnixListener:
        """The socket (0660 root:group, 0666 with ``open_to_all``, 0600 without a group) in a
        root-owned directory that only root may write."""
        path = Path(address)
        directory = path.parent
        directory.mkdir(mode=0o755, parents=True, exist_ok=True)
        st = directory.stat()
        if st.st_uid != 0 or st.st_mode & 0o022:
            raise PermissionError(f"{directory} must be owned by root and not group/world-writable")
        if path.exists() or path.is_symlink():
            probe = socket.socket(AF_UNIX, socket.SOCK_STREAM)
            probe.settimeout(1.0)
            try:
                probe.connect(str(path))
            except OSError:
                path.unlink()
            else:
                raise EndpointInUse(f"another wgdesk-helper answers on {path}")
            finally:
                probe.close()
        sock = socket.socket(AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)
        try:
            sock.bind(str(path))
        finally:
            os.umask(old)
        if group is not None:
            os.chown(path, 0, group)
            # A monitor group needs to connect too: the socket is then open to every local user and
            # the peer's credentials alone decide (every connection is checked before a byte is read).
            os.chmod(path, 0o666 if open_to_all else 0o660)
        else:
            os.chmod(path, 0o600)
        sock.listen(64)
        sock.settimeout(ACCEPT_TIMEOUT)
        return UnixListener(sock, path)

    def peer(self, connection: Connection) -> PeerIdentity:
        if not isinstance(connection, socket.socket):
            raise TypeError("not a UNIX socket connection")
        return self._peer(connection)

    def connect(self, address: str, timeout: float) -> socket.socket:
        sock = socket.socket(AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(address)
        except BaseException:
            sock.close()
            raise
        return sock

    def server_uid(self, connection: Connection) -> int | None:
        if not isinstance(connection, socket.socket):
            raise TypeError("not a UNIX socket connection")
        return peer_uid(connection)


def peer_uid(sock: socket.socket) -> int | None:
    """The uid of the process serving the other end of a connected UNIX socket (from the kernel),
    or None where this OS cannot tell."""
    so_peercred = getattr(socket, "SO_PEERCRED", None)
    if so_peercred is not None:  # Linux: struct ucred {pid, uid, gid}
        raw = sock.getsockopt(socket.SOL_SOCKET, so_peercred, struct.calcsize("3i"))
        return int(struct.unpack("3i", raw)[1])
    local_peercred = getattr(socket, "LOCAL_PEERCRED", None)
    if local_peercred is not None:  # macOS: struct xucred {u_int version; uid_t uid; ...}
        raw = sock.getsockopt(0, local_peercred, 76)  # SOL_LOCAL
        return int(struct.unpack_from("=II", raw)[1])
    return None
