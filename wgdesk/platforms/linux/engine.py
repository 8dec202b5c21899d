"""Running an engine on Linux: the UDP sockets bound with ``SO_MARK`` as root, the process started as
root with its descriptors, and the engine's own drop to an unprivileged account (``WGDESK_RUN_AS``).

The engine starts as root and becomes the unprivileged account itself before it reads the first
packet or UAPI request: an exec as that account would need it to read the engine, its Python and the
libraries — not the case when wgdesk runs from a venv or a pyenv Python in a private home (0700, or
Ubuntu's 0750).
"""

from __future__ import annotations

import errno
import os
import pwd
import socket
import struct
import subprocess
from pathlib import Path

from wgdesk.platforms.errors import PlatformError
from wgdesk.platforms.interface import EngineLaunch
from wgdesk.platforms.unix.launch import start_engine

PR_SET_DUMPABLE = 4
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
LINUX_CAPABILITY_VERSION_3 = 0x20080522
_CAPABILITY_SETS = ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")


def bind_udp(port: int, fwmark: int) -> tuple[socket.socket | None, socket.socket | None, int]:
    """Bind an IPv4 and an IPv6 (v6-only) UDP socket on the same port with ``SO_MARK`` set.

    ``port`` 0 picks a free port. Either socket is None when its family is unavailable.
    Returns (v4, v6, port).
    """
    mark = struct.pack("I", fwmark)  # unsigned: as an int, marks from 2**31 on raise TypeError
    for _attempt in range(20):
        s4: socket.socket | None = None
        s6: socket.socket | None = None
        try:
            s4 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            if fwmark:
                s4.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, mark)
            s4.bind(("0.0.0.0", port))
            chosen = s4.getsockname()[1]
            try:
                s6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
                s6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                if fwmark:
                    s6.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, mark)
                s6.bind(("::", chosen))
            except OSError as e:
                if s6 is not None:
                    s6.close()
                s6 = None
                if e.errno == errno.EADDRINUSE and port == 0:
                    s4.close()
                    continue
                if e.errno not in (errno.EAFNOSUPPORT, errno.EADDRNOTAVAIL):
                    raise
            return s4, s6, chosen
        except OSError as e:
            if s4 is not None:
                s4.close()
            raise PlatformError(f"cannot bind UDP port {port}: {e.strerror}") from e
    raise PlatformError("cannot find a UDP port free for both IPv4 and IPv6")


def start(launch: EngineLaunch) -> subprocess.Popen[bytes]:
    """Start ``executable -f IFNAME`` as root with the descriptors (``WG_TUN_FD``, ``WG_UAPI_FD``,
    ``WGDESK_UDP_FDS``) and ``WGDESK_RUN_AS=UID:GID`` unless the account is root; in a session of its
    own, output on one pipe. Raises `KeyError` for an account that does not exist, `OSError` when it
    cannot start."""
    extra = {}
    if launch.account != "root":
        pw = pwd.getpwnam(launch.account)
        extra["WGDESK_RUN_AS"] = f"{pw.pw_uid}:{pw.pw_gid}"
    return start_engine(launch, extra)


def drop_privileges(uid: int, gid: int) -> None:
    """Become ``uid``:``gid`` for good: no supplementary groups, every capability set empty (the
    bounding and ambient sets too, so not even an exec of a setuid-root program regains one),
    no_new_privs, and not dumpable (other processes of the same uid — other engines — cannot ptrace
    this one or read its memory, i.e. its keys).

    For a process started as root that has opened and loaded everything it needs: starting as root is
    what lets wgdesk run from wherever it and its Python are installed (a venv or pyenv in a private
    home, a PyInstaller bundle); dropping before the first untrusted input is what makes that safe.
    Raises `PlatformError` when the result is not exactly that (checked in /proc/self/status)."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]

    def prctl(option: int, arg: int = 0, arg3: int = 0) -> None:
        if libc.prctl(option, arg, arg3, 0, 0) != 0:
            code = ctypes.get_errno()
            raise PlatformError(f"prctl({option}, {arg}): {os.strerror(code)}")

    try:
        last_cap = int(Path("/proc/sys/kernel/cap_last_cap").read_text())
        if os.geteuid() == 0:
            for cap in range(last_cap + 1):
                prctl(PR_CAPBSET_DROP, cap)
        prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)
        if os.getgroups() or os.getresgid() != (gid, gid, gid):
            os.setgroups([])
            os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)
        # setresuid away from uid 0 empties the permitted and effective sets, not the inheritable one
        header = (ctypes.c_uint32 * 2)(LINUX_CAPABILITY_VERSION_3, 0)
        data = (ctypes.c_uint32 * 6)()
        if libc.capset(header, data) != 0:
            raise PlatformError(f"capset: {os.strerror(ctypes.get_errno())}")
        prctl(PR_SET_NO_NEW_PRIVS, 1)
        prctl(PR_SET_DUMPABLE, 0)
    except OSError as e:
        raise PlatformError(f"cannot become uid {uid}, gid {gid}: {e.strerror or e}") from e
    _check_dropped(uid, gid)


def _check_dropped(uid: int, gid: int) -> None:
    status = dict(
        line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line
    )
    wrong = [
        f"{key} {status.get(key, '?').strip()}"
        for key in _CAPABILITY_SETS
        if int(status.get(key, "1").strip(), 16) != 0
    ]
    if set(status["Uid"].split()) != {str(uid)} or set(status["Gid"].split()) != {str(gid)}:
        wrong.append(f"Uid {status['Uid'].split()} Gid {status['Gid'].split()}")
    if status.get("Groups", "").strip() or status.get("NoNewPrivs", "").strip() != "1":
        wrong.append("supplementary groups or no_new_privs")
    if wrong:
        raise PlatformError(f"privileges not fully dropped: {', '.join(wrong)}")


class LinuxEngineHost:
    """The backend's `wgdesk.platforms.interface.EngineHost`."""

    def bind_udp(self, port: int, fwmark: int) -> tuple[socket.socket | None, socket.socket | None, int]:
        return bind_udp(port, fwmark)

    def start(self, launch: EngineLaunch) -> subprocess.Popen[bytes]:
        return start(launch)

    def drop_privileges(self, uid: int, gid: int) -> None:
        drop_privileges(uid, gid)
