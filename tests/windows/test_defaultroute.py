"""The engine's UDP pinned to the best default route that is not a tunnel's (fake iphlpapi for the
routing table and change notifications; a real socket for the option bytes)."""

from __future__ import annotations

from typing import Any

from tests.windows.fake_windows import FakeIpHlpApi
from wgdesk.platforms.windows import defaultroute
from wgdesk.platforms.windows.iphelper import IpHelper

V4, V6 = 2, 23
TUNNEL, WIFI, ETHERNET, OTHER_VPN = 0x100, 0x200, 0x300, 0x400


def machine() -> FakeIpHlpApi:
    fake = FakeIpHlpApi()
    fake.routes = [
        (V4, TUNNEL, 40, 0, 0),  # our full tunnel: best metric, excluded
        (V4, WIFI, 12, 0, 0),
        (V4, ETHERNET, 7, 0, 10),
        (V4, ETHERNET, 7, 24, 0),  # not a default route
        (V6, WIFI, 12, 0, 256),
    ]
    fake.interfaces = {(TUNNEL, V4): (1420, 0, 0), (WIFI, V4): (1500, 35, 1), (ETHERNET, V4): (1500, 5, 1)}
    fake.interfaces[(WIFI, V6)] = (1500, 35, 1)
    return fake


def test_best_default_route_by_route_plus_interface_metric_excluding_our_tunnels() -> None:
    fake = machine()
    ip = IpHelper(fake)
    assert defaultroute.default_interface(ip, V4, {TUNNEL}) == 7  # 10 + 5 beats 0 + 35
    assert defaultroute.default_interface(ip, V4, set()) == 40
    assert defaultroute.default_interface(ip, V6, {TUNNEL}) == 12
    assert not fake.tables, "every routing table read was freed"
    fake.interfaces[(ETHERNET, V4)] = (1500, 5, 1, 0)  # cable out
    assert defaultroute.default_interface(ip, V4, {TUNNEL}) == 12
    fake.routes = [(V4, TUNNEL, 40, 0, 0)]
    assert defaultroute.default_interface(ip, V4, {TUNNEL}) is None


def luid(if_type: int, index: int) -> int:
    """A LUID laid out as ``NET_LUID_LH`` documents it (Reserved:24, NetLuidIndex:24, IfType:16; bit
    fields fill from the low bits) — hand-made, not read from a machine."""
    return if_type << 48 | index << 24


WINTUN, ETHERNET_TYPE, TUNNEL_TYPE = 53, 6, 131


def test_two_full_tunnels_each_engine_pinned_to_the_physical_link_not_the_other_tunnel() -> None:
    """wgdesk tunnels A and B both carry the default route at metric 0 on Wintun adapters. Engine A
    knows only its own LUID; B's adapter must be passed over too (else A's UDP goes into B, and B's
    into A: a loop) — also when B's adapter appears after A pinned its sockets. Another program's
    non-Wintun VPN (an IP-in-IP tunnel interface) and a virtual Ethernet adapter stay eligible."""
    a, b = luid(WINTUN, 1), luid(WINTUN, 2)
    ethernet, other_vpn = luid(ETHERNET_TYPE, 3), luid(TUNNEL_TYPE, 4)
    fake = FakeIpHlpApi()
    fake.routes = [
        (V4, a, 41, 0, 0),
        (V4, b, 42, 0, 0),
        (V4, ethernet, 7, 0, 10),
        (V6, b, 42, 0, 0),
        (V6, ethernet, 7, 0, 256),
    ]
    fake.interfaces = {
        (a, V4): (1420, 0, 1),
        (b, V4): (1420, 0, 1),
        (ethernet, V4): (1500, 5, 1),
        (b, V6): (1420, 0, 1),
        (ethernet, V6): (1500, 5, 1),
    }
    ip = IpHelper(fake)
    assert defaultroute.default_interface(ip, V4, {a}) == 7
    assert defaultroute.default_interface(ip, V4, {b}) == 7
    assert defaultroute.default_interface(ip, V6, {a}) == 7, "B's IPv6 default route is not A's way out"
    assert [defaultroute.is_tunnel(x, {a}) for x in (a, b, ethernet, other_vpn)] == [True, True, False, False]
    fake.routes.append((V4, other_vpn, 9, 0, 1))
    fake.interfaces[(other_vpn, V4)] = (1400, 1, 1)
    assert defaultroute.default_interface(ip, V4, {a}) == 9, "someone else's non-Wintun VPN may carry it"
    fake.routes.pop()
    changes: list[tuple[int, int | None]] = []
    fake.routes = [r for r in fake.routes if r[1] != b]  # B not up yet
    monitor = defaultroute.DefaultRouteMonitor(ip, {a}, lambda f, i: changes.append((f, i)))
    assert monitor.current == {V4: 7, V6: 7}
    fake.routes += [(V4, b, 42, 0, 0), (V6, b, 42, 0, 0)]  # B comes up with metric 0: no change for A
    fake.callback(None, None, 1)
    assert changes == []
    monitor.close()


def test_socket_option_bytes_ipv4_network_order_ipv6_host_order() -> None:
    class Recorder:
        def __init__(self) -> None:
            self.options: list[tuple[int, int, bytes]] = []

        def setsockopt(self, level: int, option: int, value: bytes) -> None:
            self.options.append((level, option, value))

    sock: Any = Recorder()
    defaultroute.bind_socket(sock, V4, 7)
    defaultroute.bind_socket(sock, V6, 7)
    assert sock.options == [(0, 31, b"\x00\x00\x00\x07"), (41, 31, b"\x07\x00\x00\x00")]


def test_monitor_calls_back_only_when_the_answer_changes_and_cancels() -> None:
    fake = machine()
    changes: list[tuple[int, int | None]] = []
    monitor = defaultroute.DefaultRouteMonitor(IpHelper(fake), {TUNNEL}, lambda f, i: changes.append((f, i)))
    assert monitor.current == {V4: 7, V6: 12}
    assert ("NotifyRouteChange2", bytes([0, 0])) in fake.calls
    fake.callback(None, None, 0)  # a route changed, not the answer
    assert changes == []
    fake.interfaces[(ETHERNET, V4)] = (1500, 5, 1, 0)
    fake.callback(None, None, 1)
    assert changes == [(V4, 12)]
    monitor.close()
    assert fake.callback is None and fake.calls[-1][0] == "CancelMibChangeNotify2"


def test_an_engines_sockets_are_pinned_and_re_pinned() -> None:
    class Sock:
        def __init__(self) -> None:
            self.options: list[bytes] = []

        def setsockopt(self, level: int, option: int, value: bytes) -> None:
            self.options.append(value)

    class FakeBind:
        def __init__(self) -> None:
            self.sock4: Any = Sock()
            self.sock6: Any = Sock()

    fake = machine()
    bind = FakeBind()
    pinning = defaultroute.UdpPinning(IpHelper(fake), {TUNNEL})
    pinning.bound(bind)
    assert bind.sock4.options == [b"\x00\x00\x00\x07"] and bind.sock6.options == [b"\x0c\x00\x00\x00"]
    fake.interfaces[(ETHERNET, V4)] = (1500, 5, 1, 0)  # cable out: Wi-Fi
    fake.callback(None, None, 1)
    assert bind.sock4.options[-1] == b"\x00\x00\x00\x0c"
    fake.routes = [r for r in fake.routes if r[1] == TUNNEL]  # offline
    fake.callback(None, None, 2)
    assert bind.sock4.options[-1] == bytes(4) and bind.sock6.options[-1] == bytes(4)
    fake.routes = machine().routes  # back online; then a new listen_port: new sockets
    fake.callback(None, None, 1)
    rebound = FakeBind()
    pinning.bound(rebound)
    assert rebound.sock4.options == [b"\x00\x00\x00\x0c"] and rebound.sock6.options == [b"\x0c\x00\x00\x00"]
    fake.interfaces[(ETHERNET, V4)] = (1500, 5, 1)  # cable back: only the new sockets follow
    fake.callback(None, None, 1)
    assert rebound.sock4.options[-1] == b"\x00\x00\x00\x07" and bind.sock4.options[-1] == b"\x00\x00\x00\x0c"
    pinning.close()


def test_a_failure_in_the_windows_callback_is_logged_not_lost(caplog: Any) -> None:
    fake = machine()
    monitor = defaultroute.DefaultRouteMonitor(IpHelper(fake), {TUNNEL}, lambda f, i: None)

    def broken(family: int, table: Any) -> int:
        raise RuntimeError("table unreadable")

    fake.GetIpForwardTable2 = broken  # type: ignore[method-assign]
    fake.callback(None, None, 1)
    assert "re-checking the default route failed" in caplog.text
    monitor.close()
