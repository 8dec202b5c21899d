"""The engines' UAPI sockets: ``/var/run/wireguard/IFNAME.sock`` (mode 0600), as wireguard-go and
``wg`` know them. The listener is created by whoever starts the engine (the helper, or an engine
started on its own) and replaces a stale socket only when nothing answers on it."""

from __future__ import annotations

import errno
import os
import socket
from contextlib import suppress
from pathlib import Path

from wgdesk.platforms.interface import EndpointInUse

AF_UNIX: int = getattr(socket, "AF_UNIX", -1)
"""Absent on Windows (mypy --platform win32 checks the engine, which imports this module there)."""

SOCKET_DIRECTORY = Path("/var/run/wireguard")


class UapiListenError(EndpointInUse):
    """The UAPI socket could not be created; `errno` says why (EADDRINUSE: an engine already answers)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.errno = code


def socket_path(ifname: str, directory: Path | None = None) -> Path:
    return (directory or SOCKET_DIRECTORY) / f"{ifname}.sock"


def listen(ifname: str, directory: Path | None = None, backlog: int = socket.SOMAXCONN) -> socket.socket:
    """Create the listening socket for ``ifname`` (directory 0755, socket 0600).

    An existing socket is replaced only if nothing answers on it; otherwise `UapiListenError`
    (EADDRINUSE) is raised, since another engine still owns the interface.
    """
    directory = directory or SOCKET_DIRECTORY
    directory.mkdir(mode=0o755, parents=True, exist_ok=True)
    path = socket_path(ifname, directory)
    if path.exists() or path.is_symlink():
        probe = socket.socket(AF_UNIX, socket.SOCK_STREAM)
        probe.settimeout(1.0)
        try:
            probe.connect(str(path))
        except OSError:
            with suppress(FileNotFoundError):
                path.unlink()
        else:
            raise UapiListenError(errno.EADDRINUSE, f"UAPI socket {path} is in use by a running engine")
        finally:
            probe.close()
    sock = socket.socket(AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o077)
    try:
        sock.bind(str(path))
    except OSError as exc:
        sock.close()
        raise UapiListenError(
            exc.errno or errno.EIO, f"cannot create UAPI socket {path}: {exc.strerror}"
        ) from exc
    finally:
        os.umask(old)
    os.chmod(path, 0o600)
    sock.listen(backlog)
    return sock


class UnixUapiEndpoints:
    """A `wgdesk.platforms.interface.UapiEndpoints` of UNIX sockets (``directory``: tests' own)."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory

    def path(self, ifname: str) -> str:
        return str(socket_path(ifname, self.directory))

    def listen(self, ifname: str) -> socket.socket:
        return listen(ifname, self.directory, backlog=16)

    def connect(self, ifname: str, timeout: float) -> socket.socket:
        sock = socket.socket(AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(self.path(ifname))
        except BaseException:
            sock.close()
            raise
        return sock

    def ready(self, ifname: str) -> bool:
        return Path(self.path(ifname)).is_socket()

    def remove(self, path: str) -> None:
        p = Path(path)
        if p.is_socket():
            with suppress(FileNotFoundError):
                p.unlink()
