"""Parsing rtnetlink link notifications for the TUN's MTU (`wgdesk.engine.linkwatch.link_mtu`)."""

from __future__ import annotations

import struct

from hypothesis import given
from hypothesis import strategies as st

from wgdesk.engine.linkwatch import IFLA_MTU, RTM_NEWLINK, link_mtu


def attr(kind: int, value: bytes) -> bytes:
    size = 4 + len(value)
    return struct.pack("=HH", size, kind) + value + bytes((-size) % 4)


def newlink(index: int, *attrs: bytes, kind: int = RTM_NEWLINK) -> bytes:
    body = struct.pack("=BxHiII", 0, 1, index, 0, 0) + b"".join(attrs)
    return struct.pack("=IHHII", 16 + len(body), kind, 0, 0, 0) + body


def test_the_newest_mtu_of_our_link_wins() -> None:
    name = attr(3, b"wg0\0")
    data = newlink(7, name, attr(IFLA_MTU, struct.pack("=I", 1380))) + newlink(
        9, attr(IFLA_MTU, struct.pack("=I", 9000))
    )
    assert link_mtu(data, 7) == 1380
    assert link_mtu(data, 9) == 9000
    assert link_mtu(data + newlink(7, attr(IFLA_MTU, struct.pack("=I", 1280))), 7) == 1280
    assert link_mtu(data, 8) is None
    assert link_mtu(newlink(7, attr(IFLA_MTU, struct.pack("=I", 1280)), kind=17), 7) is None  # RTM_DELLINK


@given(st.binary(max_size=512), st.integers(-5, 5))
def test_garbage_never_raises(data: bytes, index: int) -> None:
    result = link_mtu(data, index)
    assert result is None or 0 <= result < 2**32


@given(st.integers(0, 2**32 - 1), st.integers(1, 60))
def test_truncated_messages_are_ignored_not_misread(mtu: int, cut: int) -> None:
    message = newlink(4, attr(IFLA_MTU, struct.pack("=I", mtu)))
    assert link_mtu(message, 4) == mtu
    assert link_mtu(message[:-cut], 4) is None
