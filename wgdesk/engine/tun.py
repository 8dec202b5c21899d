"""The Linux TUN device: layer-3 packets in and out of the kernel (`IFF_TUN | IFF_NO_PI`).

Reads and writes are non-blocking and batched: `read_batch` drains what the kernel has queued,
`write_batch` hands decrypted packets back. When the interface is deleted (`ip link del`), the
kernel answers reads with `EBADFD`; `read_batch` reports that as `TunGone`.

A TUN the engine creates also has `IFF_VNET_HDR` (unless it runs the portable path): every packet
carries a `virtio_net_hdr`, which lets `write_batch` hand a run of TCP segments of one stream to the
kernel as one packet (see `offload`). Offloads stay off for the pure-Python path, so reads are
single packets behind an empty header; the compiled path turns TSO/USO on (`enable_offloads`) and
splits the superframes it reads in C. A descriptor handed over without `IFF_VNET_HDR` (`WG_TUN_FD`)
is used plainly, one packet per system call.
"""

from __future__ import annotations

import errno
import fcntl
import os
import socket
import struct
from contextlib import suppress

from wgdesk.engine.offload import VNET_HDR_LEN, coalesce

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

DEFAULT_MTU = 1420
"""wireguard-go's default MTU for a new interface."""

MAX_PACKET = 65535

GONE_ERRNOS = frozenset({errno.EBADFD, errno.EIO, errno.ENXIO, errno.ENODEV})
"""What reads and writes of a TUN whose interface was deleted fail with."""


class TunError(Exception):
    """The TUN device could not be created or configured (local misuse or missing privileges)."""


class TunGone(Exception):
    """The interface behind the TUN file descriptor was deleted."""


class Tun:
    """One TUN interface, owned through its file descriptor.

    The interface is not persistent: closing the descriptor (or exiting) removes it.
    """

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

    @staticmethod
    def _vnet_hdr_usable(fd: int) -> bool:
        """Whether the header is `VNET_HDR_LEN` bytes (set if another size was chosen)."""
        try:
            size = struct.unpack("i", fcntl.ioctl(fd, TUNGETVNETHDRSZ, bytes(4)))[0]
            if size != VNET_HDR_LEN:
                fcntl.ioctl(fd, TUNSETVNETHDRSZ, struct.pack("i", VNET_HDR_LEN))
        except OSError:
            return False
        return True

    @classmethod
    def create(cls, name: str, mtu: int = DEFAULT_MTU, vnet_hdr: bool = True) -> Tun:
        """Create (or attach to) the TUN interface `name` and set its MTU (`vnet_hdr=False`: the
        portable path's plain TUN).

        Raises `TunError` with the reason when the kernel refuses (no `/dev/net/tun`, no
        CAP_NET_ADMIN, a non-TUN interface of that name already exists, name too long).
        """
        if not name or len(name.encode()) >= IFNAMSIZ or "/" in name:
            raise TunError(f"invalid interface name {name!r}: 1 to 15 characters, no '/'")
        try:
            fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as exc:
            raise TunError(f"cannot open /dev/net/tun: {exc.strerror} (is the tun module loaded?)") from exc
        try:
            flags = IFF_TUN | IFF_NO_PI | (IFF_VNET_HDR if vnet_hdr else 0)
            ifr = struct.pack("16sH", name.encode(), flags)
            fcntl.ioctl(fd, TUNSETIFF, ifr)
        except OSError as exc:
            os.close(fd)
            hint = " (needs root or CAP_NET_ADMIN)" if exc.errno == errno.EPERM else ""
            raise TunError(f"cannot create TUN interface {name}: {exc.strerror}{hint}") from exc
        tun = cls(fd, name, vnet_hdr=vnet_hdr and cls._vnet_hdr_usable(fd))
        try:
            tun.set_mtu(mtu)
        except OSError as exc:
            tun.close()
            raise TunError(f"cannot set MTU {mtu} on {name}: {exc.strerror}") from exc
        return tun

    @classmethod
    def from_fd(cls, fd: int) -> Tun:
        """Adopt an already open TUN descriptor (`WG_TUN_FD`); its name is asked from the kernel."""
        try:
            ifr = fcntl.ioctl(fd, TUNGETIFF, bytes(40))
        except OSError as exc:
            raise TunError(f"file descriptor {fd} is not a TUN device: {exc.strerror}") from exc
        name = ifr[:IFNAMSIZ].split(b"\0", 1)[0].decode()
        flags = struct.unpack_from("H", ifr, IFNAMSIZ)[0]
        if not flags & IFF_TUN or not flags & IFF_NO_PI:
            raise TunError(f"TUN descriptor {fd} ({name}) must be opened with IFF_TUN|IFF_NO_PI")
        os.set_inheritable(fd, False)
        vnet_hdr = bool(flags & IFF_VNET_HDR)
        if vnet_hdr and not cls._vnet_hdr_usable(fd):
            raise TunError(f"TUN descriptor {fd} ({name}): cannot use a {VNET_HDR_LEN}-byte vnet header")
        return cls(fd, name, vnet_hdr=vnet_hdr)

    def _ifreq(self, fmt: str, *values: int) -> bytes:
        return struct.pack(f"16s{fmt}", self.name.encode(), *values).ljust(40, b"\0")

    def set_mtu(self, mtu: int) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            fcntl.ioctl(s.fileno(), SIOCSIFMTU, self._ifreq("i", mtu))

    def mtu(self) -> int:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            out = fcntl.ioctl(s.fileno(), SIOCGIFMTU, self._ifreq("i", 0))
        return int(struct.unpack_from("i", out, IFNAMSIZ)[0])

    def index(self) -> int:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            out = fcntl.ioctl(s.fileno(), SIOCGIFINDEX, self._ifreq("i", 0))
        return int(struct.unpack_from("i", out, IFNAMSIZ)[0])

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
