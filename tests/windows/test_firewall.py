"""The backend's Firewall on WFP (fake fwpuclnt and iphlpapi): one dynamic session for the kill switch,
replaced in place and removed by closing it; the failsafe block persistent, found by its key."""

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


def test_kill_switch_one_dynamic_session_replaced_in_place_removed_by_closing() -> None:
    fw, fake, opened = firewall()
    assert not fw.kill_switch_present()
    fw.apply_kill_switch(KillSwitch((member("wg-office"),), lan=("192.168.1.0/24",)))
    first = plan("kill-switch", ENGINE, [TunnelRules("wg-office", 0x100)], ["192.168.1.0/24"])
    assert [f["key"] for f in fake.added] == [f.key for f in first.filters]
    fake.added.clear()
    fw.apply_kill_switch(KillSwitch((member("wg-office"), member("wg-home"))))
    second = plan("kill-switch", ENGINE, [TunnelRules("wg-office", 0x100), TunnelRules("wg-home", 0x200)])
    assert fake.deleted == [f.key for f in first.filters], "the old plan deleted in the new transaction"
    assert [f["key"] for f in fake.added] == [f.key for f in second.filters]
    assert opened == [True] and fake.calls.count("FwpmTransactionCommit0") == 2
    assert fw.kill_switch_present()
    fw.remove_kill_switch()
    assert fake.calls[-1] == "FwpmEngineClose0" and not fw.kill_switch_present()


def test_failsafe_block_is_the_persistent_plan_and_found_by_key() -> None:
    fw, fake, opened = firewall()
    assert not fw.blocking_all()
    fw.block_all()
    assert fake.provider is not None and fake.provider[1] == 1  # persistent
    assert fw.blocking_all()
    fw.unblock_all()
    assert not fw.blocking_all()
    assert set(opened) == {False} and fake.calls.count("FwpmEngineClose0") == len(opened)
