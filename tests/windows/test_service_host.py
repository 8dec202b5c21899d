"""The helper as a Windows service (`service_host`), against a fake of pywin32's service modules that
plays the service manager (`FakeServiceManager`).

In-process: the exact calls of hosting, the stop request handed to the helper's stop function (also
when it comes before the helper registered one), the console fallback, a failing helper logged. Then
the real helper body (`wgdesk.helper.main.run`, Linux backend) hosted the same way in a network
namespace of its own: it serves the real client on its control socket until the fake service manager
stops it from another thread, and returns 0."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.netns import Namespace
from tests.windows.fake_windows import FakeServiceManager
from wgdesk.platforms.interface import StopHook
from wgdesk.platforms.windows import service, service_host

ROOT = Path(__file__).resolve().parents[2]


class FakeHelper:
    """A helper body that serves until its stop function is called."""

    def __init__(self, status: int = 0) -> None:
        self.status = status
        self.stopped = threading.Event()
        self.registered = threading.Event()
        self.argv: list[str] = []
        self.hooked: bool | None = None

    def __call__(self, argv: list[str], stop_hook: StopHook | None) -> int:
        self.argv = argv
        self.hooked = stop_hook is not None
        if stop_hook is not None:
            stop_hook(self.stopped.set)
            self.registered.set()
            assert self.stopped.wait(10), "never asked to stop"
        return self.status


def stop_when(ready: threading.Event | None) -> Callable[[Any], None]:
    def scm(instance: Any) -> None:
        if ready is not None:
            assert ready.wait(10)
        instance.SvcStop()

    return scm


def test_the_service_runs_the_helper_until_the_service_manager_stops_it() -> None:
    helper = FakeHelper()
    manager = FakeServiceManager(stop_when(helper.registered))
    assert service_host.host(helper, ["--log-level", "debug"], manager.bundle()) == 0
    assert helper.argv == ["--log-level", "debug"] and helper.hooked
    assert manager.calls == [
        ("Initialize",),
        ("PrepareToHostSingle", "wgdesk-helper"),
        ("StartServiceCtrlDispatcher",),
        ("ServiceFramework", ("wgdesk-helper",)),
        ("ReportServiceStatus", manager.SERVICE_RUNNING),
        ("LogMsg", manager.PYS_SERVICE_STARTED, "wgdesk-helper"),
        ("ReportServiceStatus", manager.SERVICE_STOP_PENDING),  # SvcStop
        ("LogMsg", manager.PYS_SERVICE_STOPPED, "wgdesk-helper"),
        ("ReportServiceStatus", manager.SERVICE_STOP_PENDING),  # SvcRun, after the helper returned
        ("SetServiceStatus", manager.SERVICE_STOPPED, 0, 0),  # a normal stop: no recovery action
    ]
    assert manager.hosted._svc_deps_ == ["Nsi", "TcpIp"]
    assert manager.hosted._svc_display_name_ == "wgdesk helper"


def test_a_stop_before_the_helper_is_ready_is_not_lost() -> None:
    helper = FakeHelper()
    manager = FakeServiceManager(stop_when(None))  # at once: the helper has not registered yet

    def slow(argv: list[str], stop_hook: StopHook | None) -> int:
        assert not helper.stopped.is_set()
        return helper(argv, stop_hook)

    def dispatcher() -> None:  # the stop request lands before SvcDoRun runs
        manager.scm = None
        instance = manager.hosted([manager.hosted._svc_name_])
        instance.SvcStop()
        instance.SvcRun()

    manager.StartServiceCtrlDispatcher = dispatcher  # type: ignore[method-assign]
    assert service_host.host(slow, [], manager.bundle()) == 0
    assert helper.stopped.is_set()


def test_from_a_console_the_helper_runs_in_the_foreground() -> None:
    helper = FakeHelper()
    manager = FakeServiceManager(console=True)
    assert service_host.host(helper, ["--config", "x"], manager.bundle()) == 0
    assert helper.hooked is False, "signals, not the service manager, stop it"
    assert manager.calls[-1] == ("StartServiceCtrlDispatcher",)


def test_a_failing_helper_stops_as_a_failure_so_the_recovery_policy_applies() -> None:
    """Status 3: the stop-pending report carries ERROR_SERVICE_SPECIFIC_ERROR and 0x20000003, and
    SvcRun raises, so pywin32's final SERVICE_STOPPED has a non-zero dwWin32ExitCode — what the
    failure-actions flag needs to restart the service."""
    manager = FakeServiceManager()
    assert service_host.host(lambda argv, hook: 3, [], manager.bundle()) == 3
    assert manager.calls[3:] == [
        ("ServiceFramework", ("wgdesk-helper",)),
        ("ReportServiceStatus", manager.SERVICE_RUNNING),
        ("LogMsg", manager.PYS_SERVICE_STARTED, "wgdesk-helper"),
        ("LogErrorMsg", "wgdesk-helper stopped with status 3: see its log"),
        ("LogMsg", manager.PYS_SERVICE_STOPPED, "wgdesk-helper"),
        ("ReportServiceStatus", manager.SERVICE_STOP_PENDING, 1066, 0x20000003),
        ("SetServiceStatus", manager.SERVICE_STOPPED, 1066, 0x20000001),
    ]
    assert isinstance(manager.raised, service_host.HelperFailed) and manager.raised.status == 3
    assert str(manager.raised) == "wgdesk-helper stopped with status 3: see its log"


def test_why_the_helper_refused_to_start_goes_to_the_event_log() -> None:
    """A service has no console: the helper's last stderr lines (its refusal) are in the failure's
    event log entry and in what pywin32 logs of the raised exception; stderr still gets them."""
    import io

    def refuses(argv: list[str], hook: object) -> int:
        print("wgdesk-helper: starting", file=sys.stderr)
        print(r"wgdesk-helper: C:\ProgramData\wgdesk: its owner is S-1-5-21-1-2-3-1001", file=sys.stderr)
        return 1

    manager = FakeServiceManager()
    console = io.StringIO()
    with contextlib.redirect_stderr(console):
        assert service_host.host(refuses, [], manager.bundle()) == 1
    reason = (
        "wgdesk-helper: starting\nwgdesk-helper: C:\\ProgramData\\wgdesk: its owner is S-1-5-21-1-2-3-1001"
    )
    assert ("LogErrorMsg", f"wgdesk-helper stopped with status 1: {reason}") in manager.calls
    assert str(manager.raised) == f"wgdesk-helper stopped with status 1: {reason}"
    assert console.getvalue() == reason + "\n"


def test_the_error_tail_keeps_the_last_lines_bounded() -> None:
    tail = service_host.ErrorTail(None)
    for n in range(10):
        tail.write(f"line {n}\n\n")
    tail.write("x" * 2000)
    assert tail.last() == "line 7\nline 8\nline 9\n" + "x" * 500  # blank lines skipped, the rest cut


def test_a_helper_failing_on_a_requested_stop_is_logged_but_not_restarted() -> None:
    """``sc.exe stop`` or uninstall asked, and the helper's teardown ended with status 2: the service
    stops normally (no recovery action that would restart it under the uninstaller's feet)."""
    helper = FakeHelper(status=2)
    manager = FakeServiceManager(stop_when(helper.registered))
    assert service_host.host(helper, [], manager.bundle()) == 2
    assert ("LogErrorMsg", "wgdesk-helper stopped with status 2: see its log") in manager.calls
    assert manager.calls[-2:] == [
        ("ReportServiceStatus", manager.SERVICE_STOP_PENDING),
        ("SetServiceStatus", manager.SERVICE_STOPPED, 0, 0),
    ]
    assert manager.raised is None


def test_a_helper_that_raises_stops_as_a_failure_too() -> None:
    manager = FakeServiceManager()

    def broken(argv: list[str], hook: StopHook | None) -> int:
        raise RuntimeError("bug")

    assert service_host.host(broken, [], manager.bundle()) == 1
    assert isinstance(manager.raised, RuntimeError)
    assert manager.calls[-1] == ("SetServiceStatus", manager.SERVICE_STOPPED, 1066, 0x20000001)


def test_another_dispatcher_error_is_raised() -> None:
    manager = FakeServiceManager()

    def broken() -> None:
        raise manager.error(5)

    manager.StartServiceCtrlDispatcher = broken  # type: ignore[method-assign]
    with pytest.raises(manager.error):
        service_host.host(lambda argv, hook: 0, [], manager.bundle())


def test_the_service_modules_need_pywin32() -> None:
    with pytest.raises(ImportError):
        service_host.ServiceModules.load()


REAL_HELPER = """
import json, sys, time
from tests.windows.fake_windows import FakeServiceManager
from wgdesk.client import HelperClient, HelperError
from wgdesk.helper.main import run
from wgdesk.platforms.windows import service_host

socket_path = sys.argv[1]
seen = {}

def scm(instance):
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            with HelperClient(socket_path, timeout=5) as client:
                seen["version"] = client.version()
            break
        except HelperError:
            time.sleep(0.1)
    instance.SvcStop()

manager = FakeServiceManager(scm)
status = service_host.host(run, sys.argv[2:], manager.bundle())
print(json.dumps({"status": status, "seen": seen, "calls": [list(c) for c in manager.calls]}))
"""


def test_the_real_helper_runs_as_the_service_and_stops_on_request(tmp_path: Path) -> None:
    config = tmp_path / "helper.toml"
    config.write_text(
        f'dns_backend = "file"\npersistent_dir = "{tmp_path / "var"}"\n'
        f'lockdown_file = "{tmp_path / "lib" / "lockdown.json"}"\n'
    )
    sock = tmp_path / "run" / "helper.sock"
    ns = Namespace("wgsvc")
    try:
        argv = ns.argv(
            "unshare", "-m", "--propagation", "private",
            sys.executable, "-c", REAL_HELPER, str(sock),
            "--socket", str(sock), "--state-dir", str(tmp_path / "state"), "--config", str(config),
        )  # fmt: skip
        proc = subprocess.run(
            argv, capture_output=True, text=True, timeout=90, cwd=ROOT, env={"PYTHONPATH": str(ROOT)}
        )
    finally:
        ns.delete()
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["status"] == 0, proc.stderr[-3000:] + proc.stdout[-2000:]
    assert "version" in result["seen"]["version"], "the real client was answered by the hosted helper"
    names = [c[0] for c in result["calls"]]
    assert names[:5] == [
        "Initialize",
        "PrepareToHostSingle",
        "StartServiceCtrlDispatcher",
        "ServiceFramework",
        "ReportServiceStatus",
    ]
    assert ["ReportServiceStatus", FakeServiceManager.SERVICE_STOP_PENDING] in result["calls"]
    assert result["calls"][-1] == ["SetServiceStatus", FakeServiceManager.SERVICE_STOPPED, 0, 0]
    assert not sock.exists(), "the helper removed its socket when it stopped"
    assert service.SERVICE_NAME == "wgdesk-helper"
