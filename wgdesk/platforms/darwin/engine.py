"""Running an engine on macOS (a `wgdesk.platforms.interface.EngineHost`, and the engine's own
`wgdesk.platforms.interface.EngineIO`).

The helper binds the engine's UDP sockets, creating them as the engine's account so the kill switch
can match them by user (`socketowner`); the engine ties them to the physical interface of the
default route (``IP_BOUND_IF`` / ``IPV6_BOUND_IF``, `boundif`) and ties them again after every network
change: with a full tunnel, the halves ``0.0.0.0/1`` and ``128.0.0.0/1`` would otherwise send the
encrypted packets into the tunnel itself. The engine is started directly as its own unprivileged
account (``Popen(user=…, group=…, extra_groups=[])``): on a Mac it is installed where every account
may read it (the app bundle, ``/Library``), so it needs no root at all, not even to start.
"""

from __future__ import annotations

import os
import pwd
import socket
import subprocess
from pathlib import Path

from wgdesk.platforms.darwin.boundif import BoundIfPinning, DefaultInterfaces
from wgdesk.platforms.darwin.runner import system_runner
from wgdesk.platforms.darwin.socketowner import SOCKET_ACCOUNT, OwnerRecord, bind_as, bind_pair
from wgdesk.platforms.errors import PlatformError
from wgdesk.platforms.interface import EngineLaunch, Notes, SilentNotes, Tun, UapiListener
from wgdesk.platforms.unix.engine_io import UnixEngineIO
from wgdesk.platforms.unix.launch import start_engine


class DarwinEngineIO:
    """The engine's own I/O on macOS (`wgdesk.platforms.interface.EngineIO`): a utun descriptor and a
    UNIX UAPI socket as on Linux, and its UDP sockets kept on the physical interface
    (`boundif.BoundIfPinning`), tied again after every network change."""

    compiled_reads_device = True

    def listen_uapi(self, ifname: str) -> tuple[UapiListener, Path | None]:
        return UnixEngineIO().listen_uapi(ifname)

    def guard_udp(self, tun: Tun) -> BoundIfPinning:
        return BoundIfPinning(DefaultInterfaces(system_runner))


class DarwinEngineHost:
    """Binds the engine's sockets as the socket account (`socketowner`) and starts it unprivileged.
    ``state_dir`` holds the owner record the kill switch reads; ``notes``: the helper's log."""

    def __init__(self, state_dir: Path, account: str = SOCKET_ACCOUNT, notes: Notes | None = None) -> None:
        self.owners = OwnerRecord(state_dir)
        self.account = account
        self.notes = notes or SilentNotes()

    def _account_ids(self) -> tuple[int, int] | None:
        """The socket account's (uid, gid) when sockets can be made as it: it exists, is not root,
        and we are root."""
        if os.geteuid() != 0:
            return None
        try:
            pw = pwd.getpwnam(self.account)
        except KeyError:
            return None
        return None if pw.pw_uid == 0 else (pw.pw_uid, pw.pw_gid)

    def bind_udp(self, port: int, fwmark: int) -> tuple[socket.socket | None, socket.socket | None, int]:
        """Both families on one port (``fwmark`` has no meaning here), created as the socket account
        where possible so pf can match them by user, else by us (recorded: the kill switch then
        matches the port alone). The engine ties them to the physical interface itself
        (`DarwinEngineIO.guard_udp`), also after network changes."""
        ids = self._account_ids()
        s6: socket.socket | None
        if ids is not None:
            try:
                s4, s6 = bind_as(*ids, port)
            except OSError as exc:
                self.notes.warning(
                    f"cannot create the engine's UDP sockets as {self.account} ({exc.strerror}):"
                    f" created as root, so the kill switch lets port {port or 'chosen'} out for any user"
                )
                ids = None
        if ids is None:
            try:
                s4, s6 = bind_pair(port)
            except OSError as exc:
                raise PlatformError(f"cannot bind UDP port {port}: {exc.strerror}") from exc
        chosen = s4.getsockname()[1]
        try:
            self.owners.set(chosen, os.geteuid() if ids is None else ids[0])
        except OSError as exc:
            s4.close()
            if s6 is not None:
                s6.close()
            raise PlatformError(f"cannot record the owner of UDP port {chosen}: {exc.strerror}") from exc
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
