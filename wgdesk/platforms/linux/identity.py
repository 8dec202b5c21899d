"""Who is who on Linux: the peer of a UNIX socket (``SO_PEERCRED``, ``SO_PEERGROUPS``), accounts,
and processes told apart from a reused pid by their start time."""

from __future__ import annotations

import socket
import struct
from pathlib import Path

from wgdesk.platforms.interface import PeerIdentity
from wgdesk.platforms.unix.accounts import UnixAccounts, terminate_recorded

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


class LinuxIdentity(UnixAccounts):
    """The backend's `wgdesk.platforms.interface.Identity`."""

    def start_time(self, pid: int) -> int | None:
        return process_start_time(pid)

    def terminate(self, pid: int, start_time: int | None) -> None:
        terminate_recorded(pid, start_time, process_start_time)
