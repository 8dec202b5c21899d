"""The backend's tunnel devices, routing and DNS by interface name (fake iphlpapi): names become LUIDs,
what Windows has no meaning for is refused or answered honestly, the full tunnel fixes the metric."""

from __future__ import annotations

import struct
import uuid
from ipaddress import ip_network

import pytest

from tests.windows.fake_windows import FakeIpHlpApi, FakeRegistry
from wgdesk.platforms.errors import Unsupported
from wgdesk.platforms.interface import FullTunnel, TunnelDevices
from wgdesk.platforms.windows import WindowsPlatform
from wgdesk.platforms.windows.dns import DnsSet, DnsSettings
from wgdesk.platforms.windows.iphelper import InterfaceSet, IpHelper
from wgdesk.undo import UndoRecord

LUID = 0x0006_0000_0123_4567


def platform() -> tuple[WindowsPlatform, FakeIpHlpApi]:
    fake = FakeIpHlpApi()
    fake.aliases["wg-office"] = LUID
    fake.interfaces[(LUID, 2)] = (1420, 25, 1)
    fake.interfaces[(LUID, 23)] = (1420, 25, 1)
    p = WindowsPlatform()
    p._ip = IpHelper(fake)
    p._dns = DnsSettings(fake, FakeRegistry())
    return p, fake


def test_devices_by_name() -> None:
    p, fake = platform()
    devices: TunnelDevices = p.tunnels
    assert devices.exists("wg-office") and not devices.exists("wg-none")
    devices.add_addresses("wg-office", ["10.7.0.2/32"])
    ((_, row),) = [c for c in fake.calls if c[0] == "CreateUnicastIpAddressEntry"]
    assert struct.unpack_from("<Q", row, 32)[0] == LUID
    fake.calls.clear()
    devices.configure("wg-office", mtu=1380, up=True)
    assert [struct.unpack_from("<I", r, 152)[0] for n, r in fake.calls if n == "SetIpInterfaceEntry"] == [
        1380,
        1380,
    ]
    assert devices.mtu("wg-office") == 1420
    with pytest.raises(OSError):
        devices.mtu("wg-none")
    with pytest.raises(Unsupported):
        devices.create("wg-office", packet_info=False, offload=False, record=lambda r: None)


def test_routes_only_in_the_main_table_but_a_full_tunnels_and_gone_adapters_are_fine() -> None:
    p, fake = platform()
    p.routing.add_routes("wg-office", [ip_network("10.7.0.0/24")], "main")
    assert [n for n, _ in fake.calls][-1] == "CreateIpForwardEntry2"
    with pytest.raises(Unsupported, match="one routing table"):
        p.routing.add_routes("wg-office", [ip_network("10.7.0.0/24")], "51820")
    with pytest.raises(Unsupported, match="one routing table"):
        p.routing.add_routes("wg-office", [ip_network("0.0.0.0/0")], "vpn")
    # the full tunnel's default routes, planned into its own table, go into the one table
    p.routing.add_routes("wg-office", [ip_network("0.0.0.0/0"), ip_network("::/0")], "51820")
    assert [n for n, _ in fake.calls][-2:] == ["CreateIpForwardEntry2"] * 2
    p.routing.delete_routes("wg-gone", [ip_network("10.7.0.0/24")], "main")
    assert not p.routing.table_in_use(51820) and not p.routing.mark_in_use(51820)


def test_full_tunnel_fixes_the_metric_of_each_carried_family_journalled() -> None:
    p, fake = platform()
    journal: list[UndoRecord] = []
    tunnel = FullTunnel("wg-office", 0, ("10.7.0.2/32",), frozenset({4, 6}))  # IP versions, as planned
    p.routing.full_tunnel_on(tunnel, journal.append)
    assert sorted(journal, key=lambda r: r.fields()["family"]) == [
        InterfaceSet(LUID, 2, 1420, 25, True),
        InterfaceSet(LUID, 23, 1420, 25, True),
    ]
    metrics = [struct.unpack_from("<I", r, 148)[0] for n, r in fake.calls if n == "SetIpInterfaceEntry"]
    assert metrics == [0, 0]


def test_dns_by_name_goes_to_the_adapter_guid() -> None:
    p, fake = platform()
    journal: list[UndoRecord] = []
    p.dns.set("wg-office", ["10.7.0.1"], [], journal.append)
    guid = uuid.UUID(int=LUID)  # the fake's LUID → GUID mapping
    assert journal == [DnsSet(str(guid))]
    assert fake.dns[0][:4] == (guid.bytes_le, 1, 0x6, "10.7.0.1")
    assert p.dns.backend == "SetInterfaceDnsSettings"
