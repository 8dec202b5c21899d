"""Running an engine on macOS (a `wgdesk.platforms.interface.EngineHost`).

The helper binds the engine's UDP sockets and ties them to the physical interface of the default
route (``IP_BOUND_IF`` / ``IPV6_BOUND_IF``): with a full tunnel, the halves ``0.0.0.0/1`` and
``128.0.0.0/1`` would otherwise send the encrypted packets into the tunnel itself. The engine is then
started directly as its own unprivileged account (``Popen(user=…, group=…, extra_groups=[])``): on a
Mac it is installed where every account may read it (the app bundle, ``/Library``), so it needs no
root at all, not even to start.
"""

from __future__ import annotations

import errno
import os
import pwd
import socket
import struct
import subprocess

from wgdesk.platforms.darwin.routes import parse_route_get
from wgdesk.platforms.darwin.runner import ROUTE, Runner
from wgdesk.platforms.errors import PlatformError
from wgdesk.platforms.interface import EngineLaunch
from wgdesk.platforms.unix.launch import start_engine

# <netinet/in.h>: IP_BOUND_IF 25; <netinet6/in6.h>: IPV6_BOUND_IF 125 (an interface index).
IP_BOUND_IF = 25
IPV6_BOUND_IF = 125


def bound_if_options(sock4: bool, sock6: bool, index: int) -> list[tuple[int, int, bytes]]:
    """The ``setsockopt`` calls (level, option, value) that tie the sockets to interface ``index``."""
    value = struct.pack("=I", index)
    options = []
    if sock4:
        options.append((socket.IPPROTO_IP, IP_BOUND_IF, value))
    if sock6:
        options.append((socket.IPPROTO_IPV6, IPV6_BOUND_IF, value))
    return options


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


class DarwinEngineHost:
    """Binds the engine's sockets to the physical interface and starts it unprivileged."""

    def __init__(self, runner: Runner) -> None:
        self.runner = runner

    def physical_index(self) -> int | None:
        """The index of the default route's interface, unless that is a tunnel (then: none)."""
        proc = self.runner([ROUTE, "-n", "get", "default"], check=False)
        interface = parse_route_get(proc.stdout).get("interface", "") if proc.returncode == 0 else ""
        if not interface or interface.startswith("utun"):
            return None
        try:
            return socket.if_nametoindex(interface)
        except OSError:
            return None

    def bind_udp(self, port: int, fwmark: int) -> tuple[socket.socket | None, socket.socket | None, int]:
        """Both families on one port, tied to the physical interface (``fwmark`` has no meaning here)."""
        try:
            s4 = _bind(socket.AF_INET, port)
        except OSError as exc:
            raise PlatformError(f"cannot bind UDP port {port}: {exc.strerror}") from exc
        chosen = s4.getsockname()[1]
        s6: socket.socket | None
        try:
            s6 = _bind(socket.AF_INET6, chosen)
        except OSError as exc:
            if exc.errno not in (errno.EAFNOSUPPORT, errno.EADDRNOTAVAIL):
                s4.close()
                raise PlatformError(f"cannot bind UDP port {chosen} for IPv6: {exc.strerror}") from exc
            s6 = None
        index = self.physical_index()
        if index is not None:
            for sock, (level, option, value) in zip(
                [s for s in (s4, s6) if s is not None],
                bound_if_options(True, s6 is not None, index),
                strict=True,
            ):
                sock.setsockopt(level, option, value)
        return s4, s6, chosen

    def start(self, launch: EngineLaunch) -> subprocess.Popen[bytes]:
        """Start ``executable -f IFNAME`` as ``launch.account`` with no supplementary group.
        Raises `KeyError` for an account that does not exist, `OSError` when it cannot start."""
        account = None
        if launch.account != "root":
            pw = pwd.getpwnam(launch.account)
            account = (pw.pw_uid, pw.pw_gid)
        return start_engine(launch, account=account)

    def drop_privileges(self, uid: int, gid: int) -> None:
        """Become ``uid``:``gid`` for good (a no-op check when started as that account)."""
        try:
            if os.getuid() != uid or os.geteuid() != uid:
                os.setgroups([])
                os.setgid(gid)
                os.setuid(uid)
        except OSError as exc:
            raise PlatformError(f"cannot become uid {uid}, gid {gid}: {exc.strerror}") from exc
        if uid != 0 and (os.getuid(), os.geteuid(), os.getgid(), os.getegid()) != (uid, uid, gid, gid):
            raise PlatformError(f"privileges not fully dropped (uid {os.getuid()}, gid {os.getgid()})")
