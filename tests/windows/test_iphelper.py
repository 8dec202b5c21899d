"""Addresses, routes, the interface and DNS through the IP Helper API, against a fake ``iphlpapi.dll``:
which functions, in which order, with which bytes; the journal record written before each change and
its undo. The expected bytes are built from the SDK offsets (test_structures checks them against the
headers), independently of the ctypes definitions."""

from __future__ import annotations

import struct
import uuid
from dataclasses import dataclass
from ipaddress import ip_network

import pytest

from tests.windows.fake_windows import FakeIpHlpApi, FakeRegistry
from wgdesk.platforms.errors import PlatformError
from wgdesk.platforms.windows.dns import DnsSet, DnsSettings
from wgdesk.platforms.windows.iphelper import AddressAdded, InterfaceSet, IpHelper, RouteAdded
from wgdesk.platforms.windows.records import REGISTRY
from wgdesk.platforms.windows.wintun import tunnel_guid
from wgdesk.undo import UndoRecord

LUID = 0x0006_0000_0123_4567


@dataclass
class Context:
    ip: IpHelper
    dns_settings: DnsSettings


def address_row(ip: bytes, family: int, prefix: int) -> bytes:
    row = bytearray(80)
    struct.pack_into("<H", row, 0, family)
    struct.pack_into(f"{len(ip)}s", row, 4 if family == 2 else 8, ip)
    struct.pack_into("<Q", row, 32, LUID)
    struct.pack_into("<IIII", row, 44, 1, 1, 0xFFFFFFFF, 0xFFFFFFFF)  # origins manual, lifetimes infinite
    struct.pack_into("<B", row, 60, prefix)
    struct.pack_into("<I", row, 64, 4)  # IpDadStatePreferred
    return bytes(row)


def route_row(ip: bytes, family: int, prefix: int) -> bytes:
    row = bytearray(104)
    struct.pack_into("<Q", row, 0, LUID)
    struct.pack_into("<H", row, 12, family)
    struct.pack_into(f"{len(ip)}s", row, 12 + (4 if family == 2 else 8), ip)
    struct.pack_into("<B", row, 40, prefix)
    struct.pack_into("<H", row, 44, family)  # next hop: the family's unspecified address
    struct.pack_into("<III", row, 76, 0xFFFFFFFF, 0xFFFFFFFF, 0)  # lifetimes, metric 0
    struct.pack_into("<I", row, 88, 3)
    return bytes(row)


def test_addresses_are_journalled_first_and_sent_as_the_sdk_row() -> None:
    fake = FakeIpHlpApi()
    journal: list[UndoRecord] = []

    def record(entry: UndoRecord) -> None:
        assert len(fake.calls) == len(journal), "a change made before its record was journalled"
        journal.append(entry)

    IpHelper(fake).add_addresses(LUID, ["10.7.0.2/24", "fd00::2/64"], record)
    assert journal == [AddressAdded(LUID, "10.7.0.2/24"), AddressAdded(LUID, "fd00::2/64")]
    assert fake.calls == [
        ("CreateUnicastIpAddressEntry", address_row(bytes([10, 7, 0, 2]), 2, 24)),
        ("CreateUnicastIpAddressEntry", address_row(bytes.fromhex("fd00" + "00" * 13 + "02"), 23, 64)),
    ]


def test_an_existing_address_is_fine_another_error_names_the_address() -> None:
    fake = FakeIpHlpApi()
    fake.fail["CreateUnicastIpAddressEntry"] = 5010  # ERROR_OBJECT_ALREADY_EXISTS
    IpHelper(fake).add_addresses(LUID, ["10.7.0.2/32"], lambda r: None)
    fake.fail["CreateUnicastIpAddressEntry"] = 87
    with pytest.raises(PlatformError, match=r"adding address 10\.7\.0\.3/32 failed \(error 87\)"):
        IpHelper(fake).add_addresses(LUID, ["10.7.0.3/32"], lambda r: None)


def test_routes_are_on_link_with_metric_zero_and_undo_deletes_the_same_row() -> None:
    fake = FakeIpHlpApi()
    journal: list[UndoRecord] = []
    helper = IpHelper(fake)
    helper.add_routes(LUID, [ip_network("0.0.0.0/0"), ip_network("fd00::/8")], journal.append)
    assert journal == [RouteAdded(LUID, "0.0.0.0/0"), RouteAdded(LUID, "fd00::/8")]
    v4 = route_row(bytes(4), 2, 0)
    v6 = route_row(bytes.fromhex("fd" + "00" * 15), 23, 8)
    assert fake.calls == [("CreateIpForwardEntry2", v4), ("CreateIpForwardEntry2", v6)]
    fake.calls.clear()
    fake.fail["DeleteIpForwardEntry2"] = 1168  # already gone: not an error
    for entry in reversed(journal):
        REGISTRY.undo(entry, Context(helper, DnsSettings(fake, FakeRegistry())))
    assert fake.calls == [("DeleteIpForwardEntry2", v6), ("DeleteIpForwardEntry2", v4)]


def test_interface_configure_records_the_old_values_and_undo_puts_them_back() -> None:
    fake = FakeIpHlpApi()
    fake.interfaces[(LUID, 2)] = (1500, 25, 1)
    journal: list[UndoRecord] = []
    helper = IpHelper(fake)
    helper.configure(LUID, 2, journal.append, mtu=1420, metric=0)
    assert journal == [InterfaceSet(LUID, 2, 1500, 25, True)]
    ((name, row),) = fake.calls
    assert name == "SetIpInterfaceEntry"
    assert struct.unpack_from("<I", row, 152)[0] == 1420  # NlMtu
    assert struct.unpack_from("<I", row, 148)[0] == 0  # Metric
    assert row[44] == 0  # UseAutomaticMetric off
    assert struct.unpack_from("<I", row, 144)[0] == 0  # SitePrefixLength: 0 for IPv4 or Set refuses
    fake.calls.clear()
    REGISTRY.undo(journal[0], Context(helper, DnsSettings(fake, FakeRegistry())))
    ((_, row),) = fake.calls
    assert struct.unpack_from("<I", row, 152)[0] == 1500
    assert struct.unpack_from("<I", row, 148)[0] == 25
    assert row[44] == 1


def test_undo_of_an_interface_that_is_gone_does_nothing() -> None:
    fake = FakeIpHlpApi()
    REGISTRY.undo(
        InterfaceSet(LUID, 23, 1280, 5, False), Context(IpHelper(fake), DnsSettings(fake, FakeRegistry()))
    )
    assert fake.calls == []


def test_index_of_a_luid() -> None:
    assert IpHelper(FakeIpHlpApi()).index(LUID) == 0x4567


def test_dns_through_set_interface_dns_settings_per_family() -> None:
    fake = FakeIpHlpApi()
    guid = tunnel_guid("wg-office")
    journal: list[UndoRecord] = []
    settings = DnsSettings(fake, FakeRegistry())
    settings.set(guid, ["10.7.0.1", "fd00::1", "10.7.0.53"], ["corp.example", "example"], journal.append)
    assert journal == [DnsSet(str(guid))]
    assert fake.dns == [
        (guid.bytes_le, 1, 0x2 | 0x4, "10.7.0.1,10.7.0.53", "corp.example,example"),
        (guid.bytes_le, 1, 0x2 | 0x1, "fd00::1", "<null>"),
    ]
    fake.dns.clear()
    REGISTRY.undo(journal[0], Context(IpHelper(fake), settings))
    assert fake.dns == [(guid.bytes_le, 1, 0x6, "", ""), (guid.bytes_le, 1, 0x3, "", "<null>")]


def test_dns_bad_server_changes_nothing_and_api_failure_is_reported() -> None:
    fake = FakeIpHlpApi()
    journal: list[UndoRecord] = []
    with pytest.raises(ValueError):
        DnsSettings(fake, FakeRegistry()).set(uuid.uuid4(), ["10.7.0.1", "dns.example"], [], journal.append)
    assert journal == [] and fake.dns == []
    fake.fail["SetInterfaceDnsSettings"] = 50
    with pytest.raises(PlatformError, match="error 50"):
        DnsSettings(fake, FakeRegistry()).set(uuid.uuid4(), ["10.7.0.1"], [], journal.append)


def test_dns_falls_back_to_the_registry_on_older_windows() -> None:
    fake = FakeIpHlpApi(dns_api=False)
    registry = FakeRegistry()
    guid = uuid.UUID("12345678-9abc-def0-1234-56789abcdef0")
    DnsSettings(fake, registry).set(guid, ["10.7.0.1", "fd00::1"], ["corp.example"], lambda r: None)
    base = (
        r"SYSTEM\CurrentControlSet\Services\{}\Parameters\Interfaces\{{12345678-9ABC-DEF0-1234-56789ABCDEF0}}"
    )
    assert registry.values == {
        (base.format("Tcpip"), "NameServer"): "10.7.0.1",
        (base.format("Tcpip"), "SearchList"): "corp.example",
        (base.format("Tcpip6"), "NameServer"): "fd00::1",
    }
    DnsSettings(fake, registry).clear(guid)
    assert set(registry.values.values()) == {""}


def test_the_platform_reads_and_undoes_its_own_journal_records() -> None:
    from wgdesk.platforms.windows import WindowsPlatform

    platform = WindowsPlatform()
    record = platform.load_record({"kind": "win_route", "luid": LUID, "destination": "0.0.0.0/0"})
    assert record == RouteAdded(LUID, "0.0.0.0/0")
    assert platform.load_record({"kind": "rule", "family": 4, "spec": "x"}) is None, "not ours"
    fake = FakeIpHlpApi()
    platform._ip = IpHelper(fake)
    platform.undo(record)
    assert fake.calls == [("DeleteIpForwardEntry2", route_row(bytes(4), 2, 0))]
