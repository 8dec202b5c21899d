"""Uninstall removes lockdown's persistent WFP objects by key (also when lockdown was on) and the Wintun
driver (fake fwpuclnt and wintun.dll)."""

from __future__ import annotations

from tests.windows.fake_windows import FakeFwpuclnt, FakeKernel32, FakeWintun
from wgdesk.platforms.windows import wintun
from wgdesk.platforms.windows.uninstall import remove_everything
from wgdesk.platforms.windows.wfp import FilterEngine
from wgdesk.platforms.windows.wfp_plan import TunnelRules, plan

ENGINE = r"C:\Program Files\wgdesk\wgdesk-engine.exe"


def test_lockdown_left_on_is_removed_with_the_driver() -> None:
    fake = FakeFwpuclnt()
    lockdown = plan("lockdown", ENGINE, [TunnelRules("wg-office", 0x100)])
    FilterEngine(fake, dynamic=False).apply(plan("lockdown", ENGINE, []))
    assert fake.present
    driver = FakeWintun(FakeKernel32())
    done = remove_everything(
        lambda dynamic: FilterEngine(fake, dynamic), ENGINE, wintun.Wintun(driver, driver.last_error)
    )
    assert fake.present == set(), "a filter of ours survived the uninstall"
    assert fake.deleted[-2:] == [lockdown.sublayer_key, lockdown.provider_key]
    assert ("WintunDeleteDriver", ()) in driver.calls
    assert len(done) == 2
    assert fake.calls[-1] == "FwpmEngineClose0"
    remove_everything(lambda dynamic: FilterEngine(fake, dynamic), ENGINE, None)  # twice: harmless
