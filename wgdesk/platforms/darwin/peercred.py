"""Who is at the other end of the helper's control socket on macOS: ``LOCAL_PEERCRED`` (a ``struct
xucred``) and ``LOCAL_PEERPID``, read from the kernel at accept time (never told by the client).

``struct xucred`` (<sys/ucred.h>) holds at most ``NGROUPS`` (16) groups, the first being the
effective gid (BSD's convention). A user in more groups is cut off there, so when the list is full
the membership that decides access is completed from the account database (``getgrouplist``, as
macOS's own membership checks do) for that uid — the same uid, so nothing the caller could fake.
"""

from __future__ import annotations

import os
import pwd
import socket
import struct
from collections.abc import Callable

from wgdesk.platforms.errors import PlatformError
from wgdesk.platforms.interface import PeerIdentity

# <sys/un.h>: the socket level of local (UNIX) sockets and its two options.
SOL_LOCAL = 0
LOCAL_PEERCRED = 0x001
LOCAL_PEERPID = 0x002
# <sys/ucred.h>: struct xucred { u_int cr_version; uid_t cr_uid; short cr_ngroups;
# gid_t cr_groups[NGROUPS]; union { void *_cr_unused1; pid_t cr_pid; }; } — 88 bytes on LP64
# (2 bytes of padding after cr_ngroups, 4 before the pointer-aligned union).
XUCRED_VERSION = 0
NGROUPS = 16
XUCRED = struct.Struct(f"=IIh2x{NGROUPS}I4xQ")
PID = struct.Struct("=i")

GroupList = Callable[[str, int], list[int]]


def parse_xucred(raw: bytes) -> tuple[int, tuple[int, ...]]:
    """(uid, groups) of a ``struct xucred``; groups[0] is the effective gid. `PlatformError` for a
    version or a group count the kernel would never give."""
    if len(raw) < XUCRED.size - 8:
        raise PlatformError(f"LOCAL_PEERCRED returned {len(raw)} bytes, not a struct xucred")
    version, uid, ngroups, *rest = XUCRED.unpack(raw.ljust(XUCRED.size, b"\0")[: XUCRED.size])
    if version != XUCRED_VERSION or not 1 <= ngroups <= NGROUPS:
        raise PlatformError(f"unexpected struct xucred (version {version}, {ngroups} groups)")
    return uid, tuple(rest[:ngroups])


def identity(
    pid: int, uid: int, groups: tuple[int, ...], grouplist: GroupList = os.getgrouplist
) -> PeerIdentity:
    """The `PeerIdentity` of a peer with these kernel credentials; a full xucred group list is
    completed from the account database."""
    gid, supplementary = groups[0], list(groups[1:])
    if len(groups) == NGROUPS:
        try:
            name = pwd.getpwuid(uid).pw_name
        except KeyError:
            name = ""
        if name:
            supplementary += [g for g in grouplist(name, gid) if g not in groups]
    return PeerIdentity(pid, uid, gid, tuple(dict.fromkeys(g for g in supplementary if g != gid)))


def peer_credentials(sock: socket.socket) -> PeerIdentity:
    """The kernel's credentials of ``sock``'s peer (macOS only)."""
    try:
        raw = sock.getsockopt(SOL_LOCAL, LOCAL_PEERCRED, XUCRED.size)
        (pid,) = PID.unpack(sock.getsockopt(SOL_LOCAL, LOCAL_PEERPID, PID.size))
    except OSError as exc:
        raise PlatformError(f"cannot read the peer's credentials: {exc.strerror}") from exc
    uid, groups = parse_xucred(raw)
    return identity(pid, uid, groups)
