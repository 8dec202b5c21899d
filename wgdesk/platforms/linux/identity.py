"""Who is who on Linux: the peer of a UNIX socket (``SO_PEERCRED``, ``SO_PEERGROUPS``), accounts,
and processes told apart from a reused pid by their start time."""

from __future__ import annotations

import grp
import os
import pwd
import signal
import socket
import struct
import time
from pathlib import Path

from wgdesk.platforms.interface import PeerIdentity

_SO_PEERGROUPS = 59


def peer_credentials(sock: socket.socket) -> PeerIdentity:
    """``SO_PEERCRED`` plus ``SO_PEERGROUPS`` (supplementary groups at connect time)."""
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, gid = struct.unpack("3i", raw)
    groups: tuple[int, ...] = ()
    try:
        graw = sock.getsockopt(socket.SOL_SOCKET, _SO_PEERGROUPS, 1024)  # Python caps buflen at 1024
        groups = struct.unpack(f"{len(graw) // 4}I", graw[: len(graw) // 4 * 4])
    except OSError:
        pass
    return PeerIdentity(pid, uid, gid, tuple(groups))


def process_start_time(pid: int) -> int | None:
    """Field 22 of /proc/PID/stat (start time in clock ticks), to tell a pid from a reused one."""
    try:
        data = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    rest = data.rsplit(")", 1)[1].split()
    return int(rest[19])


class LinuxIdentity:
    """The backend's `wgdesk.platforms.interface.Identity`."""

    def group_id(self, name: str) -> int | None:
        try:
            return grp.getgrnam(name).gr_gid
        except KeyError:
            return None

    def account_ids(self, user: str) -> tuple[int, int]:
        pw = pwd.getpwnam(user)
        return pw.pw_uid, pw.pw_gid

    def start_time(self, pid: int) -> int | None:
        return process_start_time(pid)

    def terminate(self, pid: int, start_time: int | None) -> None:
        """SIGTERM, then SIGKILL, each only while ``pid`` is still the process of ``start_time``."""
        if start_time is None or process_start_time(pid) != start_time:
            return
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                return
            for _ in range(50):
                if process_start_time(pid) != start_time:
                    return
                time.sleep(0.05)
