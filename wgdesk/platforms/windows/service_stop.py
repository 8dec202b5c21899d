"""The helper service stopped, and its process gone, before uninstall removes what it used.

``sc.exe stop`` only *asks*: it returns as soon as the service manager has passed the stop control on,
while the helper is still taking its tunnels down. Uninstall must not remove the Wintun driver or the
WFP objects until the helper has finished — the driver would still be in use by adapters whose
engines have not exited yet, and the helper could re-apply a kill switch after uninstall removed it.
So `stop_and_wait` (``wgdesk-helper --uninstall``, which the installer runs right after ``sc.exe
stop``) sends the stop control itself when the service still runs, polls
``QueryServiceStatusEx`` until ``SERVICE_STOPPED`` — sleeping a tenth of the service's wait hint,
between 1 and 10 s, as Microsoft's "Stopping a Service" sample does — and then waits for the
service's *process* to end: the service reports ``SERVICE_STOPPED`` before its process exits, and
the engines (job object) and with them their Wintun adapters end only when it has. Every wait is
bounded (`TIMEOUT`); past it `ServiceStillRunning` is raised and nothing is removed.

The modules are pywin32's ``win32service``, ``win32api``, ``win32event`` and ``pywintypes`` (or
fakes); the numbers passed to them are ours, held against mingw-w64's headers (`HEADER_CONSTANTS`).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from wgdesk.platforms.errors import PlatformError
from wgdesk.platforms.windows.service_host import SERVICE_NAME

SC_MANAGER_CONNECT = 0x0001
SERVICE_QUERY_STATUS = 0x0004
SERVICE_STOP = 0x0020
SERVICE_CONTROL_STOP = 0x00000001
SERVICE_STOPPED = 0x00000001
SERVICE_STOP_PENDING = 0x00000003
SYNCHRONIZE = 0x00100000
WAIT_OBJECT_0 = 0
WAIT_TIMEOUT = 258
ERROR_INVALID_PARAMETER = 87
ERROR_SERVICE_DOES_NOT_EXIST = 1060
ERROR_SERVICE_NOT_ACTIVE = 1062
HEADER_CONSTANTS = {
    "SC_MANAGER_CONNECT": SC_MANAGER_CONNECT,
    "SERVICE_QUERY_STATUS": SERVICE_QUERY_STATUS,
    "SERVICE_STOP": SERVICE_STOP,
    "SERVICE_CONTROL_STOP": SERVICE_CONTROL_STOP,
    "SERVICE_STOPPED": SERVICE_STOPPED,
    "SERVICE_STOP_PENDING": SERVICE_STOP_PENDING,
    "SYNCHRONIZE": SYNCHRONIZE,
    "WAIT_OBJECT_0": WAIT_OBJECT_0,
    "WAIT_TIMEOUT": WAIT_TIMEOUT,
    "ERROR_INVALID_PARAMETER": ERROR_INVALID_PARAMETER,
    "ERROR_SERVICE_DOES_NOT_EXIST": ERROR_SERVICE_DOES_NOT_EXIST,
    "ERROR_SERVICE_NOT_ACTIVE": ERROR_SERVICE_NOT_ACTIVE,
}

TIMEOUT = 60.0
"""How long uninstall waits for the helper (its own stop timeout is shorter: engines are killed)."""


class ServiceStillRunning(PlatformError):
    """The helper did not stop in time: nothing it uses may be removed yet."""


@dataclass(frozen=True)
class ControlModules:
    """pywin32's modules for controlling a service, and the clock the wait is measured by (or
    fakes)."""

    win32service: Any
    win32api: Any
    win32event: Any
    pywintypes: Any
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep

    @classmethod
    def load(cls) -> ControlModules:
        import pywintypes
        import win32api
        import win32event
        import win32service

        return cls(win32service, win32api, win32event, pywintypes)


def _poll_interval(wait_hint_ms: int) -> float:
    """A tenth of the wait hint, at least 1 s and at most 10 s (Microsoft's sample)."""
    return min(max(wait_hint_ms / 10000, 1.0), 10.0)


def _open_process(m: ControlModules, pid: int) -> Any:
    """A handle to wait on the service's process; None when it has already gone."""
    if not pid:
        return None
    try:
        return m.win32api.OpenProcess(SYNCHRONIZE, False, pid)
    except m.pywintypes.error as exc:
        if exc.winerror == ERROR_INVALID_PARAMETER:  # no such process (any more)
            return None
        raise


def _wait_stopped(m: ControlModules, handle: Any, deadline: float) -> dict[str, int]:
    status: dict[str, int] = m.win32service.QueryServiceStatusEx(handle)
    while status["CurrentState"] != SERVICE_STOPPED:
        now = m.clock()
        if now >= deadline:
            raise ServiceStillRunning(
                f"the {SERVICE_NAME} service has not stopped in time "
                f"(state {status['CurrentState']}): nothing removed; stop it and run this again"
            )
        m.sleep(min(_poll_interval(status["WaitHint"]), deadline - now))
        status = m.win32service.QueryServiceStatusEx(handle)
    return status


def main(control: Callable[[], ControlModules] | None = None, command: str = "--stop") -> int:
    """``wgdesk-helper --stop``: what an upgrade runs before it replaces the executables (which the
    running helper holds open), and the first step of ``--uninstall`` (``command``): stop and wait as
    `stop_and_wait`, saying what was found; exit status 1 if it did not stop."""
    modules = (control or ControlModules.load)()
    try:
        print(stop_and_wait(modules))
    except (ServiceStillRunning, modules.pywintypes.error) as exc:
        print(f"wgdesk-helper {command}: {exc}", file=sys.stderr)
        return 1
    return 0


def stop_and_wait(m: ControlModules, timeout: float = TIMEOUT) -> str:
    """Stop the helper service (if it runs) and return once it is stopped and its process has ended;
    returns what was found, for the log. Raises `ServiceStillRunning` past ``timeout`` seconds."""
    deadline = m.clock() + timeout
    manager = m.win32service.OpenSCManager(None, None, SC_MANAGER_CONNECT)
    try:
        try:
            service = m.win32service.OpenService(manager, SERVICE_NAME, SERVICE_QUERY_STATUS | SERVICE_STOP)
        except m.pywintypes.error as exc:
            if exc.winerror == ERROR_SERVICE_DOES_NOT_EXIST:
                return f"the {SERVICE_NAME} service is not installed"
            raise
        process = None
        try:
            status = m.win32service.QueryServiceStatusEx(service)
            if status["CurrentState"] == SERVICE_STOPPED:
                return f"the {SERVICE_NAME} service was stopped"
            process = _open_process(m, status["ProcessId"])
            if status["CurrentState"] != SERVICE_STOP_PENDING:
                try:
                    m.win32service.ControlService(service, SERVICE_CONTROL_STOP)
                except m.pywintypes.error as exc:
                    if exc.winerror != ERROR_SERVICE_NOT_ACTIVE:  # it stopped in between: fine
                        raise
            _wait_stopped(m, service, deadline)
            if process is not None:
                remaining = max(0, int((deadline - m.clock()) * 1000))
                if m.win32event.WaitForSingleObject(process, remaining) != WAIT_OBJECT_0:
                    raise ServiceStillRunning(
                        f"the {SERVICE_NAME} service reported stopped but its process (pid "
                        f"{status['ProcessId']}) still runs: nothing removed"
                    )
            return f"stopped the {SERVICE_NAME} service"
        finally:
            if process is not None:
                m.win32api.CloseHandle(process)
            m.win32service.CloseServiceHandle(service)
    finally:
        m.win32service.CloseServiceHandle(manager)
