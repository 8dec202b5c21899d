"""Uninstall waits until the helper service has stopped and its process has ended before removing
anything (`service_stop`), against a fake of pywin32's service-manager client (`FakeServiceControl`):
the exact calls and their order, the bounded wait, the service absent or already stopped."""

from __future__ import annotations

import pytest

from tests.windows.fake_windows import FakeServiceControl
from wgdesk.platforms.windows import service_stop
from wgdesk.platforms.windows.service_stop import ServiceStillRunning, stop_and_wait

RUNNING, STOP_PENDING, STOPPED = 4, 3, 1


def stop(fake: FakeServiceControl, timeout: float = 60.0) -> str:
    return stop_and_wait(fake.modules(), timeout)


def test_a_running_service_is_stopped_and_waited_for_until_its_process_ends() -> None:
    fake = FakeServiceControl([RUNNING, STOP_PENDING, STOP_PENDING, STOPPED], wait_hint=30000)
    assert stop(fake) == "stopped the wgdesk-helper service"
    assert fake.calls == [
        ("OpenSCManager", None, None, 0x0001),  # SC_MANAGER_CONNECT
        ("OpenService", "scm", "wgdesk-helper", 0x0004 | 0x0020),  # QUERY_STATUS | STOP
        ("QueryServiceStatusEx", "svc"),
        ("OpenProcess", 0x00100000, False, 4242),  # SYNCHRONIZE, while its pid is still reported
        ("ControlService", "svc", 1),  # SERVICE_CONTROL_STOP
        ("QueryServiceStatusEx", "svc"),
        ("sleep", 3.0),  # a tenth of the 30 s wait hint
        ("QueryServiceStatusEx", "svc"),
        ("sleep", 3.0),
        ("QueryServiceStatusEx", "svc"),
        ("WaitForSingleObject", "process", 54000),  # what is left of the 60 s
        ("CloseHandle", "process"),
        ("CloseServiceHandle", "svc"),
        ("CloseServiceHandle", "scm"),
    ]


def test_a_stop_already_pending_is_not_sent_again_and_the_poll_is_at_least_a_second() -> None:
    fake = FakeServiceControl([STOP_PENDING, STOP_PENDING, STOPPED], wait_hint=2000)
    stop(fake)
    names = [c[0] for c in fake.calls]
    assert "ControlService" not in names
    assert ("sleep", 1.0) in fake.calls


def test_a_service_that_does_not_stop_in_time_fails_and_removes_nothing() -> None:
    fake = FakeServiceControl([RUNNING, STOP_PENDING], wait_hint=300000)
    with pytest.raises(ServiceStillRunning, match="has not stopped in time"):
        stop(fake)
    sleeps = [c[1] for c in fake.calls if c[0] == "sleep"]
    assert sleeps == [10.0] * 6, "polls capped at 10 s, bounded by the timeout"
    assert fake.calls[-3:] == [
        ("CloseHandle", "process"),
        ("CloseServiceHandle", "svc"),
        ("CloseServiceHandle", "scm"),
    ]


def test_a_process_that_outlives_its_stopped_report_fails() -> None:
    fake = FakeServiceControl([RUNNING, STOPPED], process_ends=False)
    with pytest.raises(ServiceStillRunning, match="pid 4242"):
        stop(fake)


def test_not_installed_or_already_stopped_is_fine() -> None:
    absent = FakeServiceControl([RUNNING], installed=False)
    assert stop(absent) == "the wgdesk-helper service is not installed"
    assert absent.calls[-1] == ("CloseServiceHandle", "scm")
    stopped = FakeServiceControl([STOPPED])
    assert stop(stopped) == "the wgdesk-helper service was stopped"
    assert [c[0] for c in stopped.calls] == [
        "OpenSCManager",
        "OpenService",
        "QueryServiceStatusEx",
        "CloseServiceHandle",
        "CloseServiceHandle",
    ]


def test_a_stop_racing_with_the_service_ending_is_fine() -> None:
    fake = FakeServiceControl([RUNNING, STOPPED])

    def control(handle: str, code: int) -> tuple[int, ...]:
        fake.calls.append(("ControlService", handle, code))
        raise fake.error(service_stop.ERROR_SERVICE_NOT_ACTIVE)

    fake.ControlService = control  # type: ignore[method-assign]
    assert stop(fake) == "stopped the wgdesk-helper service"


def test_wgdesk_helper_stop_is_the_entry_point_an_upgrade_runs(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``wgdesk-helper --stop`` through the real helper entry point and the real Windows service object:
    stops and waits (exit 0); a service that does not stop in time: exit 1 and why. The installer's
    PrepareToInstall runs it before replacing the files, falling back to ``sc.exe stop``."""
    from pathlib import Path

    from wgdesk.helper import main as helper_main
    from wgdesk.platforms import windows

    backend = windows.WindowsPlatform()
    monkeypatch.setattr(helper_main, "backend", lambda: backend)
    fake = FakeServiceControl([RUNNING, STOP_PENDING, STOPPED])
    monkeypatch.setattr(service_stop.ControlModules, "load", fake.modules)
    assert helper_main.main(["--stop"]) == 0
    assert ("ControlService", "svc", 1) in fake.calls and (
        "WaitForSingleObject",
        "process",
        57000,
    ) in fake.calls
    assert capsys.readouterr().out == "stopped the wgdesk-helper service\n"
    stuck = FakeServiceControl([RUNNING, STOP_PENDING])
    monkeypatch.setattr(service_stop.ControlModules, "load", stuck.modules)
    assert helper_main.main(["--stop"]) == 1
    assert (
        "wgdesk-helper --stop: the wgdesk-helper service has not stopped in time" in capsys.readouterr().err
    )
    iss = (Path(__file__).resolve().parents[2] / "installers/windows/wgdesk.iss").read_text()
    prepare = iss.split("function PrepareToInstall", 1)[1]
    assert prepare.index("'--stop'") < prepare.index("'stop {#ServiceName}'") < prepare.index("'delete")
