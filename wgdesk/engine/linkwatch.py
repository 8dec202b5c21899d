"""The TUN's MTU as it changes: rtnetlink link notifications (`RTM_NEWLINK` on `RTMGRP_LINK`).

The protocol core pads packets up to a multiple of 16 bytes but never past the TUN's MTU
(whitepaper §5.4.6), and takes its fast path only for packets within it. The helper (or `wg-quick`, or
the administrator) sets the MTU after the engine has started, and lowers it later when the MTU probe
finds a black hole; so the engine follows the link's MTU as wireguard-go's Linux TUN does, from
notifications that need no privileges. Where there is no netlink (macOS, Windows) `LinkWatch.open`
returns None and the MTU read at start stays.
"""

from __future__ import annotations

import errno
import socket
import struct

RTMGRP_LINK = 1
RTM_NEWLINK = 16
IFLA_MTU = 4
NLMSG_HDR = struct.Struct("=IHHII")  # length, type, flags, sequence, port id
IFINFOMSG = struct.Struct("=BxHiII")  # family, type, index, flags, change
RTATTR = struct.Struct("=HH")


def link_mtu(data: bytes, ifindex: int) -> int | None:
    """The last MTU that the netlink messages in ``data`` report for link ``ifindex`` (None if none
    does). Malformed or truncated messages end the scan; they never raise."""
    found = None
    offset = 0
    while offset + NLMSG_HDR.size <= len(data):
        length, kind = NLMSG_HDR.unpack_from(data, offset)[:2]
        if length < NLMSG_HDR.size or offset + length > len(data):
            break
        body = offset + NLMSG_HDR.size
        if (
            kind == RTM_NEWLINK
            and length >= NLMSG_HDR.size + IFINFOMSG.size
            and IFINFOMSG.unpack_from(data, body)[2] == ifindex
        ):
            attr = body + IFINFOMSG.size
            end = offset + length
            while attr + RTATTR.size <= end:
                size, kind_attr = RTATTR.unpack_from(data, attr)
                if size < RTATTR.size or attr + size > end:
                    break
                if kind_attr == IFLA_MTU and size >= RTATTR.size + 4:
                    found = struct.unpack_from("=I", data, attr + RTATTR.size)[0]
                attr += (size + 3) & ~3
        offset += (length + 3) & ~3
    return found


class LinkWatch:
    """A non-blocking rtnetlink socket subscribed to link changes, for the engine's selector."""

    def __init__(self, sock: socket.socket, ifindex: int) -> None:
        self.sock = sock
        self.ifindex = ifindex

    @classmethod
    def open(cls, ifindex: int) -> LinkWatch | None:
        """Subscribe to link notifications; None where the OS has no rtnetlink."""
        family = getattr(socket, "AF_NETLINK", None)
        if family is None:
            return None
        # SOCK_NONBLOCK and SOCK_CLOEXEC exist where AF_NETLINK does (Linux); looked up so that the
        # module type-checks for macOS and Windows too
        flags = getattr(socket, "SOCK_NONBLOCK", 0) | getattr(socket, "SOCK_CLOEXEC", 0)
        try:
            sock = socket.socket(family, socket.SOCK_RAW | flags, 0)
            sock.bind((0, RTMGRP_LINK))
        except OSError:
            return None
        return cls(sock, ifindex)

    def fileno(self) -> int:
        return self.sock.fileno()

    def mtu(self) -> int | None:
        """Drain the queued notifications; the newest MTU they report for our link, if any."""
        found = None
        while True:
            try:
                data = self.sock.recv(65536)
            except (BlockingIOError, InterruptedError):
                return found
            except OSError as exc:
                if exc.errno == errno.ENOBUFS:  # notifications were lost: read on, a later one may say
                    continue
                return found
            mtu = link_mtu(data, self.ifindex)
            if mtu is not None:
                found = mtu

    def close(self) -> None:
        self.sock.close()
