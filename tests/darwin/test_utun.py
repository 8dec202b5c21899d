"""utun byte layouts and names (issue 15), checked against Apple's public headers by hand-built bytes:
<sys/kern_control.h> (``struct ctl_info``, ``struct sockaddr_ctl``, ``CTLIOCGINFO``),
<net/if_utun.h> (``UTUN_OPT_IFNAME``), <sys/sockio.h> (``SIOC[GS]IFMTU``). No Mac runs these: they
pin the values the code sends to the kernel there.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from wgdesk.platforms.darwin import utun
from wgdesk.platforms.interface import TunError, TunGone


def _ioc(inout: int, group: str, number: int, size: int) -> int:
    """<sys/ioccom.h>: _IOC(inout, group, num, len) with IOCPARM_MASK 0x1fff."""
    return inout | (size & 0x1FFF) << 16 | ord(group) << 8 | number


IOC_OUT, IOC_IN = 0x40000000, 0x80000000


def test_ioctl_numbers_follow_ioccom() -> None:
    assert utun.CTLIOCGINFO == _ioc(IOC_IN | IOC_OUT, "N", 3, 4 + 96) == 0xC0644E03
    assert utun.DARWIN_IOCTLS.get_mtu == _ioc(IOC_IN | IOC_OUT, "i", 51, 32)
    assert utun.DARWIN_IOCTLS.set_mtu == _ioc(IOC_IN, "i", 52, 32)
    assert utun.UTUN_OPT_IFNAME == 2


def test_ctl_info_request_layout() -> None:
    raw = utun.ctl_info_request()
    assert len(raw) == 100
    assert raw[:4] == b"\0\0\0\0"
    assert raw[4:30] == b"com.apple.net.utun_control" and raw[30:] == bytes(70)
    reply = (0x1234).to_bytes(4, "little" if socket.htons(1) != 1 else "big") + raw[4:]
    assert utun.ctl_id_of(reply) == 0x1234
    with pytest.raises(ValueError):
        utun.ctl_info_request("x" * 96)


def test_sockaddr_ctl_layout() -> None:
    raw = utun.sockaddr_ctl(7, 3)
    native = "little" if socket.htons(1) != 1 else "big"
    assert len(raw) == 32
    assert raw[0] == 32 and raw[1] == 32  # sc_len, sc_family = AF_SYSTEM
    assert raw[2:4] == (2).to_bytes(2, native)  # ss_sysaddr = AF_SYS_CONTROL
    assert raw[4:8] == (7).to_bytes(4, native) and raw[8:12] == (3).to_bytes(4, native)
    assert raw[12:] == bytes(20)  # sc_reserved


@pytest.mark.parametrize(("name", "unit"), [("utun", 0), ("utun0", 1), ("utun12", 13)])
def test_unit_for(name: str, unit: int) -> None:
    assert utun.unit_for(name) == unit


@pytest.mark.parametrize("name", ["wg0", "utun-1", "utunx", "utun12345", ""])
def test_unit_for_refuses_other_names(name: str) -> None:
    with pytest.raises(TunError, match="utun or utunN"):
        utun.unit_for(name)


def test_ifname_of() -> None:
    assert utun.ifname_of(b"utun4\0garbage\0\0\0") == "utun4"
    assert utun.ifname_of(b"utun15") == "utun15"


def test_name_record_as_wg_quick_writes_it(tmp_path: Path) -> None:
    path = utun.write_name_record("office", "utun5", tmp_path / "wireguard")
    assert path == tmp_path / "wireguard" / "office.name"
    assert path.read_text() == "utun5\n"
    utun.write_name_record("office", "utun6", tmp_path / "wireguard")
    assert path.read_text() == "utun6\n"
    assert sorted(p.name for p in path.parent.iterdir()) == ["office.name"]


def test_headers_are_macos_address_families() -> None:
    assert utun.address_family_header(bytes([0x45]) + bytes(19)) == b"\0\0\0\x02"
    assert utun.address_family_header(bytes([0x60]) + bytes(39)) == b"\0\0\0\x1e"
    assert utun.address_family_header(b"\x10abc") is None
    assert utun.address_family_header(b"") is None


def test_darwin_tun_io_over_a_socketpair() -> None:
    """Reads strip the header, writes add it, malformed ones are counted, a closed peer is `TunGone`."""
    engine_end, kernel = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    tun = utun.DarwinTun(engine_end.detach(), "utun9")
    v4, v6 = bytes([0x45]) + bytes(27), bytes([0x60]) + bytes(47)
    kernel.send(b"\0\0\0\x02" + v4)
    kernel.send(b"\0\0")  # too short for a header
    kernel.send(b"\0\0\0\x1e" + v6)
    assert tun.read_batch(10) == [v4, v6]
    assert tun.malformed == 1
    assert tun.read_batch(10) == []
    assert tun.write_batch([v6, b"\x20junk", v4]) == 1
    assert kernel.recv(100) == b"\0\0\0\x1e" + v6
    assert kernel.recv(100) == b"\0\0\0\x02" + v4
    assert tun.writes == 2 and tun.malformed == 2
    kernel.close()
    with pytest.raises(TunGone):
        tun.write_batch([v4])
    tun.close()
    tun.close()  # twice is fine


def test_driver_refuses_a_descriptor_that_is_not_utun() -> None:
    r, w = os.pipe()
    try:
        with pytest.raises(TunError, match="not a utun socket"):
            utun.DarwinTunDriver().adopt(r)
    finally:
        os.close(r)
        os.close(w)
