"""The backend's Firewall on WFP (fake fwpuclnt and iphlpapi): the kill switch persistent, replaced in
one transaction, surviving the helper and found, replaced or removed by the next one; the failsafe
block persistent, found by its key."""

from __future__ import annotations

from tests.windows.fake_windows import FakeFwpuclnt, FakeIpHlpApi
from wgdesk.platforms.interface import KillSwitch, KillSwitchMember
from wgdesk.platforms.windows.firewall import WindowsFirewall
from wgdesk.platforms.windows.iphelper import IpHelper
from wgdesk.platforms.windows.wfp import FilterEngine
from wgdesk.platforms.windows.wfp_plan import TunnelRules, plan

ENGINE = r"C:\Program Files\wgdesk\wgdesk-engine.exe"


class Source:
    def __init__(self) -> None:
        fake = FakeIpHlpApi()
        fake.aliases = {"wg-office": 0x100, "wg-home": 0x200}
        self.ip = IpHelper(fake)
        self.dns_settings = None


def firewall() -> tuple[WindowsFirewall, FakeFwpuclnt, list[bool]]:
    fake = FakeFwpuclnt()
    opened: list[bool] = []

    def open_engine(dynamic: bool) -> FilterEngine:
        opened.append(dynamic)
        return FilterEngine(fake, dynamic)

    return WindowsFirewall(Source(), ENGINE, open_engine), fake, opened  # type: ignore[arg-type]


def member(name: str) -> KillSwitchMember:
    return KillSwitchMember(name, name, 0, 51820)


def test_kill_switch_persistent_replaced_in_one_transaction_removed_whole() -> None:
    fw, fake, opened = firewall()
    assert not fw.kill_switch_present()
    fw.apply_kill_switch(KillSwitch((member("wg-office"),), lan=("192.168.1.0/24",)))
    first = plan("kill-switch", ENGINE, [TunnelRules("wg-office", 0x100)], ["192.168.1.0/24"])
    assert [f["key"] for f in fake.added] == [f.key for f in first.filters]
    assert {f["flags"] for f in fake.added} == {1}, "persistent: survives the helper"
    fake.added.clear()
    fake.deleted.clear()
    fw.apply_kill_switch(KillSwitch((member("wg-office"), member("wg-home"))))
    second = plan("kill-switch", ENGINE, [TunnelRules("wg-office", 0x100), TunnelRules("wg-home", 0x200)])
    assert fake.deleted == [f.key for f in first.filters], "the old plan deleted in the new transaction"
    assert [f["key"] for f in fake.added] == [f.key for f in second.filters]
    assert fake.calls.count("FwpmFilterCreateEnumHandle0") == 1, "enumerated only when nothing is known"
    assert set(opened) == {False} and fake.calls.count("FwpmTransactionCommit0") == 2
    assert fake.calls.count("FwpmEngineOpen0") == fake.calls.count("FwpmEngineClose0"), "none left open"
    assert fw.kill_switch_present()
    fw.remove_kill_switch()
    assert fake.present == set() and not fw.kill_switch_present()


def test_a_kill_switch_survives_the_helper_and_the_next_one_finds_and_replaces_or_removes_it() -> None:
    """Helper one protects two tunnels and dies (its object is dropped: nothing closed or removed).
    Helper two finds the kill switch in place, replaces it with its own member in one transaction
    (the other tunnel's filters go although it never heard of that tunnel), then removes it."""
    fw, fake, _ = firewall()
    fw.apply_kill_switch(KillSwitch((member("wg-office"), member("wg-home"))))
    left = set(fake.present)
    del fw
    second, _, _ = firewall()
    second.open_engine = lambda dynamic: FilterEngine(fake, dynamic)  # type: ignore[method-assign]
    assert second.kill_switch_present(), "found by its block filter's key"
    second.apply_kill_switch(KillSwitch((member("wg-office"),)))
    only = plan("kill-switch", ENGINE, [TunnelRules("wg-office", 0x100)])
    assert fake.present == {f.key for f in only.filters} and left - fake.present
    third, _, _ = firewall()
    third.open_engine = lambda dynamic: FilterEngine(fake, dynamic)  # type: ignore[method-assign]
    assert third.kill_switch_present()
    third.remove_kill_switch()
    assert fake.present == set() and not third.kill_switch_present()


def test_failsafe_block_is_the_persistent_plan_and_found_by_key() -> None:
    fw, fake, opened = firewall()
    assert not fw.blocking_all()
    fw.block_all()
    assert fake.provider is not None and fake.provider[1] == 1  # persistent
    assert fw.blocking_all()
    fw.unblock_all()
    assert not fw.blocking_all()
    assert set(opened) == {False} and fake.calls.count("FwpmEngineClose0") == len(opened)
