"""The UDP bind: one listen port on IPv4 and IPv6, like wireguard-go's `conn.Bind`.

Two sockets share the port (the IPv6 one is `IPV6_V6ONLY`). `fwmark` is applied with `SO_MARK`.
Receive buffers are large (7 MiB, as wireguard-go asks) so bursts survive while Python is busy.
UDP GSO and GRO are on unless the bind is made for the portable path (`offload=False`: one
datagram per system call, as macOS and Windows send and receive).
"""

from __future__ import annotations

import errno
import os
import socket
import struct
import sys
from contextlib import suppress

Endpoint = tuple[str, int]

SOCKET_BUFFER_SIZE = 7 << 20
SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)
SO_SNDBUFFORCE = getattr(socket, "SO_SNDBUFFORCE", 32)
SO_MARK = getattr(socket, "SO_MARK", 36)
MAX_DATAGRAM = 65535
SOL_UDP = getattr(socket, "SOL_UDP", 17)
UDP_SEGMENT = getattr(socket, "UDP_SEGMENT", 103)
UDP_GRO = getattr(socket, "UDP_GRO", 104)
_GRO_CMSG_SPACE: int = getattr(socket, "CMSG_SPACE", lambda size: 0)(4)
"""Room for the GRO segment size. Windows has no ``CMSG_SPACE`` (nor GRO): the module must import there."""
GSO_MAX_SEGMENTS = 64
GSO_MAX_BYTES = 65000
_GSO_REFUSED = frozenset({errno.EIO, errno.EINVAL, errno.ENOPROTOOPT, errno.EOPNOTSUPP, errno.EMSGSIZE})
_BIND_RETRIES = 100


class BindError(Exception):
    """The UDP port could not be bound or configured; `errno` is what UAPI reports."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.errno = code


def _tune(sock: socket.socket, offload: bool = True) -> bool:
    """Non-blocking, big buffers, UDP GRO on (with `offload`); returns whether GRO is on."""
    sock.setblocking(False)
    for force, plain in ((SO_RCVBUFFORCE, socket.SO_RCVBUF), (SO_SNDBUFFORCE, socket.SO_SNDBUF)):
        try:
            sock.setsockopt(socket.SOL_SOCKET, force, SOCKET_BUFFER_SIZE)
        except OSError:
            with suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, plain, SOCKET_BUFFER_SIZE)
    if not offload:
        with suppress(OSError):  # an adopted socket may have it on
            sock.setsockopt(SOL_UDP, UDP_GRO, 0)
        return False
    try:
        sock.setsockopt(SOL_UDP, UDP_GRO, 1)
    except OSError:
        return False
    return True


_MARK = struct.Struct("I")
"""`SO_MARK` is an unsigned 32-bit value: passed as an int, Python refuses marks from 2³¹ on (TypeError,
found by fuzzing UAPI `fwmark=`) and reads them back negative."""


def _set_mark(sock: socket.socket, mark: int) -> None:
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_MARK, _MARK.pack(mark))
    except OSError as exc:
        raise BindError(exc.errno or errno.EPERM, f"cannot set fwmark {mark:#x}: {exc.strerror}") from exc


class Bind:
    """The engine's UDP sockets (either may be missing when the host lacks that address family)."""

    def __init__(
        self, sock4: socket.socket | None, sock6: socket.socket | None, offload: bool = True
    ) -> None:
        if sock4 is None and sock6 is None:
            raise BindError(errno.EAFNOSUPPORT, "neither IPv4 nor IPv6 UDP is available")
        self.sock4 = sock4
        self.sock6 = sock6
        self.offload = offload
        self.gro = all([_tune(sock, offload) for sock in self.sockets()])
        self.port: int = (sock4 or sock6).getsockname()[1]  # type: ignore[union-attr]
        self.fwmark = 0
        self.send_errors = 0
        self.last_send_error = 0
        self.gso = offload

    @classmethod
    def open(cls, port: int = 0, fwmark: int = 0, offload: bool = True) -> Bind:
        """Bind `port` (0 = any free port) on both families. Raises `BindError` (EADDRINUSE, EACCES…)."""
        last: OSError | None = None
        for _ in range(_BIND_RETRIES if port == 0 else 1):
            sock4 = sock6 = None
            try:
                sock4, chosen = cls._bind_one(socket.AF_INET, port)
                sock6, _ = cls._bind_one(socket.AF_INET6, chosen if sock4 else port)
            except OSError as exc:
                for s in (sock4, sock6):
                    if s is not None:
                        s.close()
                last = exc
                if exc.errno == errno.EADDRINUSE and port == 0:
                    continue
                break
            bind = cls(sock4, sock6, offload)
            if fwmark:
                try:
                    bind.set_mark(fwmark)
                except BindError:
                    bind.close()
                    raise
            return bind
        code = last.errno if last and last.errno else errno.EADDRINUSE
        raise BindError(code, f"cannot bind UDP port {port}: {os.strerror(code)}")

    @staticmethod
    def _bind_one(family: int, port: int) -> tuple[socket.socket | None, int]:
        try:
            sock = socket.socket(family, socket.SOCK_DGRAM)
        except OSError as exc:
            if exc.errno in (errno.EAFNOSUPPORT, errno.EPROTONOSUPPORT):
                return None, port
            raise
        try:
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                sock.bind(("::", port))
            else:
                sock.bind(("0.0.0.0", port))
        except OSError as exc:
            sock.close()
            if family == socket.AF_INET6 and exc.errno == errno.EADDRNOTAVAIL:
                return None, port  # IPv6 disabled on this host
            raise
        return sock, sock.getsockname()[1]

    @classmethod
    def from_fds(cls, spec: str, offload: bool = True) -> Bind:
        """Adopt bound sockets handed over as `FD4,FD6` (either may be `-`), see WGDESK_UDP_FDS."""
        parts = spec.split(",")
        if len(parts) != 2:
            raise BindError(
                errno.EINVAL, f"WGDESK_UDP_FDS must be 'FD4,FD6' (either may be '-'), not {spec!r}"
            )
        socks: list[socket.socket | None] = []
        for part, family in zip(parts, (socket.AF_INET, socket.AF_INET6), strict=True):
            part = part.strip()
            if part == "-":
                socks.append(None)
                continue
            if not part.isdigit():
                raise BindError(errno.EINVAL, f"WGDESK_UDP_FDS: {part!r} is not a file descriptor")
            sock = socket.socket(fileno=int(part))
            if sock.family != family or sock.type != socket.SOCK_DGRAM:
                raise BindError(
                    errno.EINVAL,
                    f"WGDESK_UDP_FDS: fd {part} is not a bound UDP socket of the expected family",
                )
            sock.set_inheritable(False)
            socks.append(sock)
        bind = cls(socks[0], socks[1], offload)
        for sock in bind.sockets():
            with suppress(OSError):
                (bind.fwmark,) = _MARK.unpack(sock.getsockopt(socket.SOL_SOCKET, SO_MARK, _MARK.size))
        return bind

    def sockets(self) -> list[socket.socket]:
        return [s for s in (self.sock4, self.sock6) if s is not None]

    def set_mark(self, mark: int) -> None:
        """Apply `fwmark` (0 = off) to every socket; raises `BindError` (EPERM without CAP_NET_ADMIN)."""
        for sock in self.sockets():
            _set_mark(sock, mark)
        self.fwmark = mark

    @staticmethod
    def recv_batch(sock: socket.socket, limit: int, gro: bool = False) -> list[tuple[bytes, Endpoint]]:
        """Read about `limit` datagrams from `sock`, stopping when none is queued.

        With `gro` (the socket has `UDP_GRO` on) one read may return several datagrams of one
        sender coalesced by the kernel, with their size in a control message; they are split here.
        """
        batch: list[tuple[bytes, Endpoint]] = []
        append = batch.append
        try:
            if not gro:
                recvfrom = sock.recvfrom
                for _ in range(limit):
                    data, addr = recvfrom(MAX_DATAGRAM)
                    append((data, (addr[0], addr[1])))
                return batch
            recvmsg = sock.recvmsg  # type: ignore[attr-defined,unused-ignore]  # not on Windows (no GRO)
            while len(batch) < limit:
                data, ancdata, _, addr = recvmsg(MAX_DATAGRAM, _GRO_CMSG_SPACE)
                endpoint = (addr[0], addr[1])
                size = 0
                for level, kind, value in ancdata:
                    if level == SOL_UDP and kind == UDP_GRO:
                        size = int.from_bytes(value[:4], sys.byteorder)
                if 0 < size < len(data):
                    batch.extend([(data[i : i + size], endpoint) for i in range(0, len(data), size)])
                else:
                    append((data, endpoint))
        except BlockingIOError:
            pass
        except OSError:
            pass  # e.g. ECONNREFUSED from an earlier ICMP error: nothing to read now
        return batch

    def _route(self, host: str) -> tuple[socket.socket | None, str]:
        if ":" in host:
            if host.startswith("::ffff:") and "." in host:
                return self.sock4, host[7:]
            return self.sock6, host
        return self.sock4, host

    def send_batch(self, datagrams: list[tuple[bytes, Endpoint]]) -> int:
        """Send datagrams to their endpoints; returns how many could not be sent.

        Runs of equal-sized datagrams to one endpoint (the last may be shorter) go out in one
        `sendmsg` with UDP GSO (`UDP_SEGMENT`): the kernel splits them into separate datagrams,
        so the receiver sees exactly what one `sendto` each would give, for one system call.
        Where the kernel or route refuses GSO, the bind falls back to one `sendto` per datagram.
        """
        failed = self._send(datagrams)
        self.send_errors += failed
        return failed

    def _send(self, datagrams: list[tuple[bytes, Endpoint]]) -> int:
        failed = 0
        n = len(datagrams)
        i = 0
        while i < n:
            data, endpoint = datagrams[i]
            size = len(data)
            j = i + 1
            if self.gso and size:
                limit = i + min(GSO_MAX_SEGMENTS, GSO_MAX_BYTES // size)
                while j < n and j < limit and datagrams[j][1] == endpoint:
                    length = len(datagrams[j][0])
                    if length != size:
                        if 0 < length < size:
                            j += 1  # a shorter datagram may end the run
                        break
                    j += 1
            sock, host = self._route(endpoint[0])
            if sock is None:
                failed += j - i
                self.last_send_error = errno.EAFNOSUPPORT
                i = j
                continue
            try:
                if j - i == 1:
                    sock.sendto(data, (host, endpoint[1]))
                else:
                    # One iovec per datagram: the kernel gathers them, nothing is joined here.
                    sock.sendmsg(  # type: ignore[attr-defined,unused-ignore]  # not on Windows (no GSO)
                        [d for d, _ in datagrams[i:j]],
                        [(SOL_UDP, UDP_SEGMENT, struct.pack("=H", size))],
                        0,
                        (host, endpoint[1]),
                    )
            except OSError as exc:
                if j - i > 1 and exc.errno in _GSO_REFUSED:
                    self.gso = (
                        False  # e.g. no checksum offload on the route's device: plain sends from now on
                    )
                    failed += self._send(datagrams[i:j])
                else:
                    failed += j - i
                    self.last_send_error = exc.errno or 0
            i = j
        return failed

    def close(self) -> None:
        for sock in self.sockets():
            sock.close()
