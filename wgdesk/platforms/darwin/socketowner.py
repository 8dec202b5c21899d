"""Who owns the engine's UDP sockets, as pf's ``user`` sees it.

pf matches ``user`` against the credentials a socket was *created* with (pf.conf(5): "User and group
IDs are stored when a socket is created; when a process creates a listening socket as root … and
subsequently changes to another user ID …, the credentials will remain root"). The helper binds the
engine's sockets and hands them over (``WGDESK_UDP_FDS``), so sockets the helper made would be root's
and a ``user`` rule could only say "root" — any root process. So the sockets are created by a short
child of the helper that has become the engine's socket account (`SOCKET_ACCOUNT`, made by the .pkg)
and sends them back over a socketpair (``SCM_RIGHTS``): they are that account's wherever they go.

The kill switch then lets the engine's UDP out by port *and* user (`pf.kill_switch_rules`): with the
engine dead, a process of another account that binds the freed port is not let out. Where the sockets
could not be made as the account (no such account, the helper not root, a port it may not bind) they
are made by the helper as before, and the owner record says root: the kill switch falls back to the
port alone for that port (and the helper's log says so).

The record (``engine-sockets`` in the runtime directory: ``PORT UID`` lines) survives a helper
restart; the newest bind of a port replaces its line, since a port has one owner at a time.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import struct
from pathlib import Path

from wgdesk.platforms.files import write_durably

SOCKET_ACCOUNT = "wgdesk-engine"
"""The account that owns the engines' UDP sockets (the .pkg's postinstall creates it)."""
CHILD_TIMEOUT = 10.0
"""Seconds the helper waits for the child's sockets (it binds two sockets: milliseconds)."""
_REPLY = struct.Struct("=ii")
"""The child's answer: (errno, port); errno 0 with the sockets attached."""


def _bind(family: int, port: int) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", port))
    except OSError:
        sock.close()
        raise
    return sock


def bind_pair(port: int) -> tuple[socket.socket, socket.socket | None]:
    """An IPv4 and an IPv6-only socket on one port (0: any); IPv6 None where the host has none.
    Raises `OSError`."""
    s4 = _bind(socket.AF_INET, port)
    try:
        return s4, _bind(socket.AF_INET6, s4.getsockname()[1])
    except OSError as exc:
        if exc.errno in (errno.EAFNOSUPPORT, errno.EADDRNOTAVAIL):
            return s4, None
        s4.close()
        raise


def _child(channel: socket.socket, uid: int, gid: int, port: int) -> None:
    """In the forked child: become ``uid``:``gid``, bind, send the sockets back. Never returns."""
    code = errno.EIO
    try:
        os.setgroups([])
        os.setgid(gid)
        os.setuid(uid)
        s4, s6 = bind_pair(port)
        fds = [s.fileno() for s in (s4, s6) if s is not None]
        reply = _REPLY.pack(0, s4.getsockname()[1]) + (b"6" if s6 is not None else b"-")
        socket.send_fds(channel, [reply], fds)
        code = 0
    except OSError as exc:
        code = exc.errno or errno.EIO
    except BaseException:
        pass
    if code:
        with contextlib.suppress(OSError):
            channel.sendall(_REPLY.pack(code, 0))
    os._exit(0 if code == 0 else 1)


def bind_as(uid: int, gid: int, port: int) -> tuple[socket.socket, socket.socket | None]:
    """`bind_pair` in a child that is ``uid``:``gid`` (only root may ask), so the sockets are created
    with that account's credentials. Raises `OSError` with the child's errno."""
    # a stream: the child's exit ends it even when it could not answer (a datagram pair would wait)
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child's coverage is not collected
            ours.close()
            _child(theirs, uid, gid, port)
        theirs.close()
        try:
            ours.settimeout(CHILD_TIMEOUT)
            message, fds, _, _ = socket.recv_fds(ours, _REPLY.size + 1, 2)
        except TimeoutError:
            os.kill(pid, 9)
            raise OSError(errno.ETIMEDOUT, "the socket child did not answer") from None
        finally:
            os.waitpid(pid, 0)
    finally:
        ours.close()
    sockets = [socket.socket(fileno=fd) for fd in fds]
    if len(message) < _REPLY.size:
        for s in sockets:
            s.close()
        raise OSError(errno.EIO, "the socket child exited without an answer")
    code, _ = _REPLY.unpack_from(message)
    if code:
        for s in sockets:
            s.close()
        raise OSError(code, os.strerror(code))
    has6 = message[_REPLY.size :] == b"6"
    if len(sockets) != (2 if has6 else 1):
        for s in sockets:
            s.close()
        raise OSError(errno.EIO, "the socket child sent the wrong number of sockets")
    return sockets[0], sockets[1] if has6 else None


class OwnerRecord:
    """``PORT UID`` per bound port: who created the engine's sockets on it (the kill switch asks)."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / "engine-sockets"

    def read(self) -> dict[int, int]:
        try:
            lines = self.path.read_text().splitlines()
        except OSError:
            return {}
        owners = {}
        for line in lines:
            parts = line.split()
            if len(parts) == 2 and all(p.isdigit() for p in parts):
                owners[int(parts[0])] = int(parts[1])
        return owners

    def owner(self, port: int) -> int | None:
        """The uid that created the sockets on ``port``; None when unknown."""
        return self.read().get(port)

    def set(self, port: int, uid: int) -> None:
        owners = self.read()
        owners[port] = uid
        text = "".join(f"{p} {u}\n" for p, u in sorted(owners.items()))
        write_durably(self.path, text.encode(), 0o644)
