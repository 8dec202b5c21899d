"""The Linux TUN device (`IFF_TUN`): the one way wgdesk opens one, and the engine's batched I/O on it.

`open_tun` is the single ``TUNSETIFF`` call of wgdesk: the helper opens the device it hands to an
engine with it, and so does an engine that creates its own (`LinuxTunDriver.create`). Why not
python-pytun: it opens the device but cannot adopt a descriptor handed over (``TUNGETIFF``), turn
offloads on (``TUNSETOFFLOAD``) or set the vnet header size — the engine needed those ioctls beside
it, so there were two ways to open a TUN (docs/architecture.md, "dependencies").

Reads and writes are non-blocking and batched: `LinuxTun.read_batch` drains what the kernel has
queued, `write_batch` hands decrypted packets back. When the interface is deleted (`ip link del`),
the kernel answers reads with `EBADFD`; `read_batch` reports that as `TunGone`.

A TUN the engine creates also has `IFF_VNET_HDR` (unless it runs the portable path): every packet
carries a `virtio_net_hdr`, which lets `write_batch` hand a run of TCP segments of one stream to the
kernel as one packet (see `wgdesk.engine.offload`). Offloads stay off for the pure-Python path, so
reads are single packets behind an empty header; the compiled path turns TSO/USO on
(`enable_offloads`) and splits the superframes it reads in C. A descriptor handed over without
`IFF_VNET_HDR` (`WG_TUN_FD`) is used plainly, one packet per system call.
"""

from __future__ import annotations

import errno
import fcntl
import os
import socket
import struct
from contextlib import suppress

from wgdesk.engine.offload import VNET_HDR_LEN, coalesce
from wgdesk.platforms.interface import TunError, TunGone

TUNSETIFF = 0x400454CA
TUNGETIFF = 0x800454D2
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
IFF_VNET_HDR = 0x4000
TUNSETOFFLOAD = 0x400454D0
TUN_F_CSUM = 0x01
TUN_F_TSO4 = 0x02
TUN_F_TSO6 = 0x04
TUN_F_USO4 = 0x20
TUN_F_USO6 = 0x40
TUNGETVNETHDRSZ = 0x800454D7
TUNSETVNETHDRSZ = 0x400454D8
SIOCGIFMTU = 0x8921
SIOCSIFMTU = 0x8922
SIOCGIFINDEX = 0x8933
IFNAMSIZ = 16

MAX_PACKET = 65535

GONE_ERRNOS = frozenset({errno.EBADFD, errno.EIO, errno.ENXIO, errno.ENODEV})
"""What reads and writes of a TUN whose interface was deleted fail with."""


def open_tun(name: str, packet_info: bool = False, vnet_hdr: bool = False, nonblocking: bool = False) -> int:
    """Create (or attach to) the TUN interface ``name`` and return its open fd (close-on-exec).

    ``packet_info`` keeps the 4-byte packet-information header (no ``IFF_NO_PI``): what
    wireguard-go up to 2022 assumes of a TUN fd handed to it in ``WG_TUN_FD``. ``vnet_hdr`` adds
    ``IFF_VNET_HDR`` (see the module docstring). The interface is not persistent: it disappears when
    the last fd is closed. Raises `TunError` with the reason (no ``/dev/net/tun``, no
    CAP_NET_ADMIN, a non-TUN interface of that name, a name too long).
    """
    if not name or len(name.encode()) >= IFNAMSIZ or "/" in name:
        raise TunError(f"invalid interface name {name!r}: 1 to 15 characters, no '/'")
    try:
        fd = os.open("/dev/net/tun", os.O_RDWR | (os.O_NONBLOCK if nonblocking else 0))
    except OSError as exc:
        raise TunError(f"cannot open /dev/net/tun: {exc.strerror} (is the tun module loaded?)") from exc
    flags = IFF_TUN | (0 if packet_info else IFF_NO_PI) | (IFF_VNET_HDR if vnet_hdr else 0)
    try:
        fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), flags))
    except OSError as exc:
        os.close(fd)
        hint = " (needs root or CAP_NET_ADMIN)" if exc.errno == errno.EPERM else ""
        raise TunError(f"cannot create TUN interface {name}: {exc.strerror}{hint}") from exc
    return fd


def tun_flags(fd: int) -> tuple[str, int]:
    """The interface name and ``IFF_*`` flags of an open TUN descriptor (``TUNGETIFF``)."""
    try:
        ifr = fcntl.ioctl(fd, TUNGETIFF, bytes(40))
    except OSError as exc:
        raise TunError(f"file descriptor {fd} is not a TUN device: {exc.strerror}") from exc
    return ifr[:IFNAMSIZ].split(b"\0", 1)[0].decode(), struct.unpack_from("H", ifr, IFNAMSIZ)[0]


def _vnet_hdr_usable(fd: int) -> bool:
    """Whether the header is `VNET_HDR_LEN` bytes (set if another size was chosen)."""
    try:
        size = struct.unpack("i", fcntl.ioctl(fd, TUNGETVNETHDRSZ, bytes(4)))[0]
        if size != VNET_HDR_LEN:
            fcntl.ioctl(fd, TUNSETVNETHDRSZ, struct.pack("i", VNET_HDR_LEN))
    except OSError:
        return False
    return True


def _ifreq(name: str, value: int = 0) -> bytes:
    return struct.pack("16si", name.encode(), value).ljust(40, b"\0")


def interface_ioctl(name: str, request: int, value: int = 0) -> int:
    """One ``SIOC*IF*`` request about interface ``name`` (an int in, an int out)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        out = fcntl.ioctl(s.fileno(), request, _ifreq(name, value))
    return int(struct.unpack_from("i", out, IFNAMSIZ)[0])


class LinuxTun:
    """One TUN interface, owned through its file descriptor (a `wgdesk.platforms.interface.Tun`).

    The interface is not persistent: closing the descriptor (or exiting) removes it.
    """

    gone_errnos = GONE_ERRNOS

    def __init__(self, fd: int, name: str, vnet_hdr: bool = False) -> None:
        self.fd = fd
        self.name = name
        os.set_blocking(fd, False)
        self.closed = False
        self.vnet_hdr = vnet_hdr
        """Packets carry a `virtio_net_hdr`; TCP runs are coalesced on write."""
        self.writes = 0
        """System calls made by `write_batch` so far (to see the coalescing at work)."""
        self.offloads = 0
        """The `TUN_F_*` offloads on: superframes a reader must split (`enable_offloads`)."""
        self.af_header = False
        """Packets carry a 4-byte address family (macOS utun); never on Linux."""
        if vnet_hdr:
            with suppress(OSError):  # no offloads: reads stay single, checksummed packets
                fcntl.ioctl(fd, TUNSETOFFLOAD, 0)

    def enable_offloads(self) -> int:
        """Let the kernel hand over TCP (and, from Linux 6.2, UDP) superframes of up to 64 KiB with
        checksums left to us: one read for up to 45 packets. Only for a reader that splits them (the
        compiled path). Returns the offloads that are on (0 without a vnet header)."""
        if not self.vnet_hdr:
            return 0
        for flags in (
            TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_USO4 | TUN_F_USO6,
            TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6,
        ):
            try:
                fcntl.ioctl(self.fd, TUNSETOFFLOAD, flags)
            except OSError:
                continue
            self.offloads = flags
            return flags
        return 0

    def set_mtu(self, mtu: int) -> None:
        interface_ioctl(self.name, SIOCSIFMTU, mtu)

    def mtu(self) -> int:
        return interface_ioctl(self.name, SIOCGIFMTU)

    def index(self) -> int:
        return interface_ioctl(self.name, SIOCGIFINDEX)

    def fileno(self) -> int:
        return self.fd

    def read_batch(self, limit: int) -> list[bytes]:
        """Read up to `limit` packets, stopping early when none is queued. Raises `TunGone`."""
        packets: list[bytes] = []
        read = os.read
        fd = self.fd
        try:
            if self.vnet_hdr:
                for _ in range(limit):
                    packets.append(read(fd, MAX_PACKET + VNET_HDR_LEN)[VNET_HDR_LEN:])
            else:
                for _ in range(limit):
                    packets.append(read(fd, MAX_PACKET))
        except BlockingIOError:
            pass
        except OSError as exc:
            if exc.errno in GONE_ERRNOS:
                raise TunGone(self.name) from exc
            raise
        return packets

    def write_batch(self, packets: list[bytes]) -> int:
        """Write packets to the kernel; returns how many writes failed (queue full or refused).

        With a vnet header, runs of one TCP stream go to the kernel as one packet.
        """
        if self.vnet_hdr:
            return self._write_coalesced(packets)
        write = os.write
        fd = self.fd
        dropped = 0
        self.writes += len(packets)
        for packet in packets:
            try:
                write(fd, packet)
            except BlockingIOError:
                dropped += 1
            except OSError as exc:
                if exc.errno in GONE_ERRNOS:
                    raise TunGone(self.name) from exc
                dropped += 1
        return dropped

    def _write_coalesced(self, packets: list[bytes]) -> int:
        writev = os.writev
        fd = self.fd
        failed = 0

        def write(iov: list[bytes | memoryview]) -> None:
            nonlocal failed
            try:
                writev(fd, iov)
            except BlockingIOError:
                failed += 1
            except OSError as exc:
                if exc.errno in GONE_ERRNOS:
                    raise TunGone(self.name) from exc
                failed += 1

        self.writes += coalesce(packets, write)
        return failed

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            os.close(self.fd)


class LinuxTunDriver:
    """The engine's `wgdesk.platforms.interface.TunDriver` on Linux."""

    def create(self, name: str, mtu: int, vnet_hdr: bool) -> LinuxTun:
        """Create (or attach to) the TUN interface ``name`` and set its MTU (``vnet_hdr=False``: the
        portable path's plain TUN). Raises `TunError`."""
        fd = open_tun(name, vnet_hdr=vnet_hdr, nonblocking=True)
        tun = LinuxTun(fd, name, vnet_hdr=vnet_hdr and _vnet_hdr_usable(fd))
        try:
            tun.set_mtu(mtu)
        except OSError as exc:
            tun.close()
            raise TunError(f"cannot set MTU {mtu} on {name}: {exc.strerror}") from exc
        return tun

    def adopt(self, fd: int) -> LinuxTun:
        """Adopt an already open TUN descriptor (`WG_TUN_FD`); its name is asked from the kernel."""
        name, flags = tun_flags(fd)
        if not flags & IFF_TUN or not flags & IFF_NO_PI:
            raise TunError(f"TUN descriptor {fd} ({name}) must be opened with IFF_TUN|IFF_NO_PI")
        os.set_inheritable(fd, False)
        vnet_hdr = bool(flags & IFF_VNET_HDR)
        if vnet_hdr and not _vnet_hdr_usable(fd):
            raise TunError(f"TUN descriptor {fd} ({name}): cannot use a {VNET_HDR_LEN}-byte vnet header")
        return LinuxTun(fd, name, vnet_hdr=vnet_hdr)
