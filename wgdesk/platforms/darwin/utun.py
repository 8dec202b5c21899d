"""The macOS tunnel device (``utun``): how the helper opens one, and the engine's I/O on it.

A utun is a kernel-control socket: ``socket(PF_SYSTEM, SOCK_DGRAM, SYSPROTO_CONTROL)`` connected to
the control ``com.apple.net.utun_control`` (its id looked up with the ``CTLIOCGINFO`` ioctl) at unit
N+1 for ``utunN`` (0: the kernel picks the first free one). The interface exists while the socket is
open; its name is read back with ``getsockopt(SYSPROTO_CONTROL, UTUN_OPT_IFNAME)``. Every packet on
it starts with a 4-byte address family in network byte order (``AF_INET`` 2, ``AF_INET6`` 30 on
macOS, not Linux's 10). wireguard-go's ``tun_darwin.go`` works the same way; CPython exports
``PF_SYSTEM`` and ``SYSPROTO_CONTROL`` but not ``CTLIOCGINFO`` or ``UTUN_OPT_IFNAME``, so their
values are here, from Apple's public headers (cited at each).

`DarwinTun` is the engine's `wgdesk.platforms.interface.Tun` over such a descriptor: plain reads and
writes, one packet per system call (the portable path; no offloads exist on utun). The same class
runs on Linux in the tests over an ``AF_UNIX`` datagram socketpair that carries the same header
(``tests/darwin/utun_standin.py``), with `IfreqIoctls` of Linux for the MTU.
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
import socket
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from wgdesk.platforms.interface import TunError, TunGone

# <sys/sys_domain.h>: the system domain and its kernel-control protocol.
PF_SYSTEM = 32
AF_SYS_CONTROL = 2
SYSPROTO_CONTROL = 2
# <sys/kern_control.h>: MAX_KCTL_NAME 96; struct ctl_info { u_int32_t ctl_id; char ctl_name[96]; }
# (100 bytes); CTLIOCGINFO = _IOWR('N', 3, struct ctl_info) = 0xC0000000 | 100 << 16 | 'N' << 8 | 3.
MAX_KCTL_NAME = 96
CTL_INFO = struct.Struct(f"=I{MAX_KCTL_NAME}s")
CTLIOCGINFO = 0xC0644E03
# struct sockaddr_ctl { u_char sc_len; u_char sc_family; u_int16_t ss_sysaddr; u_int32_t sc_id;
# u_int32_t sc_unit; u_int32_t sc_reserved[5]; } (32 bytes). CPython builds it from ``(id, unit)``.
SOCKADDR_CTL = struct.Struct("=BBHII20x")
# <net/if_utun.h>: UTUN_CONTROL_NAME and the socket option that returns the interface's name.
UTUN_CONTROL_NAME = "com.apple.net.utun_control"
UTUN_OPT_IFNAME = 2
IFNAMSIZ = 16
# <sys/socket.h> on macOS: the address families in a utun packet's header.
AF_INET_DARWIN = 2
AF_INET6_DARWIN = 30
HEADER_V4 = struct.pack("!I", AF_INET_DARWIN)
HEADER_V6 = struct.pack("!I", AF_INET6_DARWIN)
HEADER_LEN = 4
MAX_PACKET = 65535

GONE_ERRNOS = frozenset(
    {errno.EBADF, errno.ENXIO, errno.EIO, errno.ENOTCONN, errno.ECONNRESET, errno.ECONNREFUSED, errno.EPIPE}
)
"""What reads and writes fail with once the utun (or the stand-in's other end) is gone."""

UTUN_NAME = re.compile(r"utun(\d{1,4})?")
RUN_DIR = Path("/var/run/wireguard")


def ctl_info_request(name: str = UTUN_CONTROL_NAME) -> bytes:
    """The ``struct ctl_info`` handed to ``CTLIOCGINFO``: id 0 and the control's name."""
    encoded = name.encode()
    if len(encoded) >= MAX_KCTL_NAME:
        raise ValueError(f"kernel control name {name!r} is too long")
    return CTL_INFO.pack(0, encoded)


def ctl_id_of(reply: bytes) -> int:
    """The control id the kernel filled into ``struct ctl_info``."""
    return int(CTL_INFO.unpack(reply[: CTL_INFO.size])[0])


def sockaddr_ctl(ctl_id: int, unit: int) -> bytes:
    """The ``struct sockaddr_ctl`` the kernel gets for ``connect((ctl_id, unit))`` (what CPython
    builds from the tuple; kept as the reference the layout tests check)."""
    return SOCKADDR_CTL.pack(SOCKADDR_CTL.size, PF_SYSTEM, AF_SYS_CONTROL, ctl_id, unit)


def unit_for(name: str) -> int:
    """The ``sc_unit`` that creates ``name``: ``utun`` → 0 (the kernel picks), ``utunN`` → N+1.
    Raises `TunError` for any other name (macOS names utun interfaces itself)."""
    match = UTUN_NAME.fullmatch(name)
    if match is None:
        raise TunError(f"interface name must be utun or utunN on macOS, not {name!r}")
    return 0 if match.group(1) is None else int(match.group(1)) + 1


def ifname_of(raw: bytes) -> str:
    """The interface name ``UTUN_OPT_IFNAME`` returned (NUL-terminated, at most ``IFNAMSIZ``)."""
    return raw[:IFNAMSIZ].split(b"\0", 1)[0].decode("ascii", "replace")


def open_utun(unit: int = 0) -> tuple[int, str]:
    """Create a utun interface; returns its descriptor (close-on-exec, blocking) and ``utunN``.
    macOS only. Raises `TunError` with the reason (not root, the unit taken)."""
    try:
        sock = socket.socket(PF_SYSTEM, socket.SOCK_DGRAM, SYSPROTO_CONTROL)
    except OSError as exc:
        raise TunError(f"cannot open a kernel-control socket: {exc.strerror}") from exc
    try:
        reply = fcntl.ioctl(sock.fileno(), CTLIOCGINFO, ctl_info_request())
        sock.connect((ctl_id_of(reply), unit))
        name = ifname_of(sock.getsockopt(SYSPROTO_CONTROL, UTUN_OPT_IFNAME, IFNAMSIZ))
    except OSError as exc:
        sock.close()
        hint = " (needs root)" if exc.errno in (errno.EPERM, errno.EACCES) else ""
        raise TunError(f"cannot create a utun interface (unit {unit}): {exc.strerror}{hint}") from exc
    return sock.detach(), name


def utun_name(fd: int) -> str:
    """The ``utunN`` name of an open utun descriptor (`TunError` when it is not one)."""
    try:
        with socket.socket(fileno=os.dup(fd)) as sock:
            return ifname_of(sock.getsockopt(SYSPROTO_CONTROL, UTUN_OPT_IFNAME, IFNAMSIZ))
    except OSError as exc:
        raise TunError(f"file descriptor {fd} is not a utun socket: {exc.strerror}") from exc


def name_record(tunnel: str, run_dir: Path = RUN_DIR) -> Path:
    """Where wg-quick on macOS records a tunnel's ``utunN``: ``wg show NAME`` reads it."""
    return run_dir / f"{tunnel}.name"


def write_name_record(tunnel: str, ifname: str, run_dir: Path = RUN_DIR) -> Path:
    """Record ``ifname`` for ``tunnel`` (``utunN`` newline, as wg-quick writes it), atomically."""
    run_dir.mkdir(mode=0o755, parents=True, exist_ok=True)
    path = name_record(tunnel, run_dir)
    tmp = path.with_suffix(".name.tmp")
    tmp.write_text(ifname + "\n")
    os.replace(tmp, path)
    return path


def address_family_header(packet: bytes) -> bytes | None:
    """The 4-byte header for an IP packet (by its version nibble); None for anything else."""
    if not packet:
        return None
    version = packet[0] >> 4
    return HEADER_V4 if version == 4 else HEADER_V6 if version == 6 else None


@dataclass(frozen=True)
class IfreqIoctls:
    """The ``SIOC[GS]IFMTU`` requests and ``struct ifreq`` size of an OS."""

    get_mtu: int
    set_mtu: int
    ifreq_size: int


# <sys/sockio.h>: SIOCGIFMTU _IOWR('i', 51, struct ifreq), SIOCSIFMTU _IOW('i', 52, struct ifreq);
# struct ifreq is 32 bytes on macOS (a 16-byte name and a 16-byte union).
DARWIN_IOCTLS = IfreqIoctls(get_mtu=0xC0206933, set_mtu=0x80206934, ifreq_size=32)


def _mtu_ioctl(ioctls: IfreqIoctls, name: str, request: int, value: int = 0) -> int:
    ifreq = struct.pack(f"{IFNAMSIZ}si", name.encode(), value).ljust(ioctls.ifreq_size, b"\0")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        out = fcntl.ioctl(s.fileno(), request, ifreq)
    return int(struct.unpack_from("i", out, IFNAMSIZ)[0])


class DarwinTun:
    """One utun as the engine reads and writes it (a `wgdesk.platforms.interface.Tun`)."""

    gone_errnos = GONE_ERRNOS
    vnet_hdr = False
    af_header = True
    offloads = 0

    def __init__(self, fd: int, name: str, ioctls: IfreqIoctls = DARWIN_IOCTLS) -> None:
        self.fd = fd
        self.name = name
        self.ioctls = ioctls
        os.set_blocking(fd, False)
        self.closed = False
        self.writes = 0
        self.malformed = 0
        """Reads too short to carry a header, and writes of a packet that is not IPv4 or IPv6."""

    def enable_offloads(self) -> int:
        return 0  # utun has none: one packet per read and write

    def set_mtu(self, mtu: int) -> None:
        _mtu_ioctl(self.ioctls, self.name, self.ioctls.set_mtu, mtu)

    def mtu(self) -> int:
        return _mtu_ioctl(self.ioctls, self.name, self.ioctls.get_mtu)

    def index(self) -> int:
        return socket.if_nametoindex(self.name)

    def fileno(self) -> int:
        return self.fd

    def read_batch(self, limit: int) -> list[bytes]:
        """Read up to ``limit`` packets without their header. Raises `TunGone`."""
        packets: list[bytes] = []
        read = os.read
        fd = self.fd
        try:
            for _ in range(limit):
                data = read(fd, MAX_PACKET + HEADER_LEN)
                if len(data) <= HEADER_LEN:
                    if not data:  # end of file: the other end (the stand-in's bridge) is gone
                        raise TunGone(self.name)
                    self.malformed += 1
                    continue
                packets.append(data[HEADER_LEN:])
        except BlockingIOError:
            pass
        except OSError as exc:
            if exc.errno in GONE_ERRNOS:
                raise TunGone(self.name) from exc
            raise
        return packets

    def write_batch(self, packets: list[bytes]) -> int:
        """Write packets behind their address-family header; returns how many failed."""
        writev = os.writev
        fd = self.fd
        failed = 0
        for packet in packets:
            header = address_family_header(packet)
            if header is None:
                self.malformed += 1
                failed += 1
                continue
            self.writes += 1
            try:
                writev(fd, (header, packet))
            except BlockingIOError:
                failed += 1
            except OSError as exc:
                if exc.errno in GONE_ERRNOS:
                    raise TunGone(self.name) from exc
                failed += 1
        return failed

    def close(self) -> None:
        """Close the descriptor (macOS then removes the interface); twice is harmless."""
        already, self.closed = self.closed, True
        if not already:
            os.close(self.fd)


@contextmanager
def _closed_on_error(tun: DarwinTun, what: str) -> Iterator[None]:
    """Close ``tun`` and raise `TunError` (``what``: the reason's start) when the block fails."""
    try:
        yield
    except OSError as exc:
        tun.close()
        raise TunError(f"{what}: {exc.strerror}") from exc


class DarwinTunDriver:
    """The engine's `wgdesk.platforms.interface.TunDriver` on macOS."""

    def create(self, name: str, mtu: int, vnet_hdr: bool) -> DarwinTun:
        """Create ``utun`` (the kernel picks N) or ``utunN`` and set its MTU; ``vnet_hdr`` is
        ignored (utun has no offloads). Raises `TunError`."""
        tun = DarwinTun(*open_utun(unit_for(name)))
        with _closed_on_error(tun, f"cannot set MTU {mtu} on {tun.name}"):
            tun.set_mtu(mtu)
        return tun

    def adopt(self, fd: int) -> DarwinTun:
        """Adopt a utun descriptor handed over (``WG_TUN_FD``); its name is asked from the kernel."""
        name = utun_name(fd)
        os.set_inheritable(fd, False)
        return DarwinTun(fd, name)
