"""Uninstall stops the service and waits for it, then removes lockdown's persistent WFP objects by key
(also when lockdown was on), a kill switch left behind (its per-tunnel filters found by enumeration)
and the Wintun driver (fake fwpuclnt, wintun.dll and pywin32)."""

from __future__ import annotations

import sys

import pytest

from tests.windows.fake_windows import DllShim, FakeFwpuclnt, FakeKernel32, FakeServiceControl, FakeWintun
from wgdesk.platforms.errors import PlatformError
from wgdesk.platforms.windows import dlls, service_stop, uninstall, wintun
from wgdesk.platforms.windows.uninstall import remove_everything
from wgdesk.platforms.windows.wfp import FilterEngine
from wgdesk.platforms.windows.wfp_plan import TunnelRules, plan

ENGINE = r"C:\Program Files\wgdesk\wgdesk-engine.exe"


def test_lockdown_left_on_is_removed_with_the_driver() -> None:
    fake = FakeFwpuclnt()
    lockdown = plan("lockdown", ENGINE, [TunnelRules("wg-office", 0x100)])
    FilterEngine(fake, dynamic=False).apply(plan("lockdown", ENGINE, []))
    # and a kill switch a crashed helper left, naming a tunnel nobody remembers
    FilterEngine(fake, dynamic=False).apply(plan("kill-switch", ENGINE, [TunnelRules("wg-gone", 0x200)]))
    assert fake.present
    driver = FakeWintun(FakeKernel32())
    done = remove_everything(
        lambda dynamic: FilterEngine(fake, dynamic), ENGINE, wintun.Wintun(driver, driver.last_error)
    )
    assert fake.present == set(), "a filter of ours survived the uninstall"
    kill_switch = plan("kill-switch", ENGINE, [])
    assert fake.deleted[-2:] == [kill_switch.sublayer_key, kill_switch.provider_key]
    assert lockdown.sublayer_key in fake.deleted and lockdown.provider_key in fake.deleted
    assert ("WintunDeleteDriver", ()) in driver.calls
    assert len(done) == 2
    assert fake.calls[-1] == "FwpmEngineClose0"
    remove_everything(lambda dynamic: FilterEngine(fake, dynamic), ENGINE, None)  # twice: harmless


def test_wgdesk_helper_uninstall_is_the_entry_point(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``wgdesk-helper --uninstall`` (the real helper entry point, the real Windows service object)
    loads wintun.dll beside the program and fwpuclnt (fakes at `dlls.load`) and removes both kinds."""
    from pathlib import Path

    from wgdesk.helper import main as helper_main
    from wgdesk.platforms import windows

    fake = FakeFwpuclnt()
    FilterEngine(fake, dynamic=False).apply(plan("lockdown", ENGINE, []))
    driver = FakeWintun(FakeKernel32())
    loaded: list[object] = []

    def load(name: object) -> object:
        loaded.append(name)
        return DllShim(driver) if isinstance(name, Path) else {"fwpuclnt": DllShim(fake)}[str(name)]

    scm = FakeServiceControl([4, 3, 1])  # running, stop pending, stopped

    def load_modules() -> service_stop.ControlModules:
        loaded.append("pywin32")
        return scm.modules()

    monkeypatch.setattr(dlls, "load", load)
    monkeypatch.setattr(service_stop.ControlModules, "load", load_modules)
    backend = windows.WindowsPlatform()
    monkeypatch.setattr(helper_main, "backend", lambda: backend)
    assert helper_main.main(["--uninstall"]) == 0
    # the service first, stopped and its process ended; only then the driver and the filters
    assert loaded == ["pywin32", Path(sys.executable).with_name("wintun.dll"), "fwpuclnt"]
    assert ("ControlService", "svc", 1) in scm.calls
    assert scm.calls[-4][:2] == ("WaitForSingleObject", "process")
    assert fake.present == set() and ("WintunDeleteDriver", ()) in driver.calls
    assert capsys.readouterr().out.splitlines() == [
        "stopped the wgdesk-helper service",
        "removed wgdesk's persistent WFP providers, sublayers and filters",
        "removed the Wintun driver",
    ]


def test_uninstall_fails_loudly_when_wfp_cannot_be_opened(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = FakeFwpuclnt()
    fake.fail["FwpmEngineOpen0"] = (1, 5)  # access denied: not run as an administrator

    def load(name: object) -> object:
        raise PlatformError("no wintun here")

    monkeypatch.setattr(dlls, "load", load)
    scm = FakeServiceControl([1])
    assert uninstall.main(lambda dynamic: FilterEngine(fake, dynamic), scm.modules) == 1
    err = capsys.readouterr().err
    assert "the Wintun driver stays" in err and "wgdesk-helper --uninstall:" in err


def test_nothing_is_removed_while_the_service_still_runs(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A helper that does not stop within the bound: exit status 1, the driver and every filter stay
    (the helper still uses them), and the message says what to do."""
    fake = FakeFwpuclnt()
    FilterEngine(fake, dynamic=False).apply(plan("lockdown", ENGINE, []))
    before = set(fake.present)
    driver = FakeWintun(FakeKernel32())
    monkeypatch.setattr(dlls, "load", lambda name: DllShim(driver))
    scm = FakeServiceControl([4, 3])
    assert uninstall.main(lambda dynamic: FilterEngine(fake, dynamic), scm.modules) == 1
    assert "has not stopped in time" in capsys.readouterr().err
    assert fake.present == before and ("WintunDeleteDriver", ()) not in driver.calls
