"""The helper under the Windows service control dispatcher.

`wgdesk-helper.exe` is the service's program (``sc.exe create … binPath=``). Started by the service
manager, it hands itself to the dispatcher (pywin32's ``servicemanager``: `host`), which calls
``SvcDoRun`` of `HelperService` on a thread of its own: that runs the helper's ordinary body
(`wgdesk.helper.main.run`) with a stop hook instead of signal handlers — the service manager's stop
request arrives on yet another thread (``SvcStop``), where Python cannot install signal handlers.
A stop requested before the helper registered its stop function is kept and applied at once.
Started from a console instead (a developer's elevated prompt), the dispatcher refuses
(``ERROR_FAILED_SERVICE_CONTROLLER_CONNECT``) and the helper runs in the foreground, stopped by
Ctrl+C.

A helper that returns a non-zero status must look like a failure to the service manager, or its
recovery policy (``sc.exe failure``: restart) never applies — the policy applies to a service that
*reported* ``SERVICE_STOPPED`` only when its ``dwWin32ExitCode`` is not ``ERROR_SUCCESS`` and the
service's failure-actions flag is set (``SERVICE_FAILURE_ACTIONS_FLAG``, Microsoft's documentation;
``sc.exe failureflag``, set at install by `service.install_commands`). pywin32 reports the final
``SERVICE_STOPPED`` itself once ``SvcRun`` returns: ``ERROR_SUCCESS`` when it returned,
``ERROR_SERVICE_SPECIFIC_ERROR`` (service-specific code ``0x20000001``) when it raised (pywin32's
``PythonService.cpp``). So `HelperService.SvcRun` on a failed helper first reports
``SERVICE_STOP_PENDING`` carrying ``ERROR_SERVICE_SPECIFIC_ERROR`` and the helper's status as the
service-specific code (bit 29 set, an application's code, as pywin32 does: the event log reads the
code as a Win32 error otherwise), then raises `HelperFailed`, so that the last status the service
manager gets is a failure too. Not after a stop that was asked for (``SvcStop``: ``sc.exe stop``,
uninstall, an upgrade): a helper that stops with an error then is logged, but the service stops
normally — a restart would race with the uninstaller removing what the helper uses.

A service has no console: what the helper writes to ``stderr`` before it stops (why it refused to
start: a settings error, a state directory others could change) would be lost. `SvcDoRun` keeps
the last lines of it (`ErrorTail`) and puts them in the event log entry of the failure.
"""

from __future__ import annotations

import contextlib
import sys
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any, ClassVar

from wgdesk.platforms.interface import HelperRun

SERVICE_NAME = "wgdesk-helper"
DISPLAY_NAME = "wgdesk helper"
DESCRIPTION = "Brings wgdesk's WireGuard tunnels up and down for the wgdesk app."
DEPENDENCIES = ("Nsi", "TcpIp")
ERROR_FAILED_SERVICE_CONTROLLER_CONNECT = 1063
ERROR_SERVICE_SPECIFIC_ERROR = 1066
APPLICATION_CODE = 0x20000000
"""Bit 29: a code defined by an application, not a Win32 error."""
HEADER_CONSTANTS = {
    "ERROR_FAILED_SERVICE_CONTROLLER_CONNECT": ERROR_FAILED_SERVICE_CONTROLLER_CONNECT,
    "ERROR_SERVICE_SPECIFIC_ERROR": ERROR_SERVICE_SPECIFIC_ERROR,
}


class HelperFailed(Exception):
    """Raised out of ``SvcRun`` when the helper returned a non-zero status, so that pywin32 reports
    ``SERVICE_STOPPED`` with an error (its message lands in the event log)."""

    def __init__(self, status: int, reason: str = "") -> None:
        super().__init__(f"{SERVICE_NAME} stopped with status {status}: {reason or 'see its log'}")
        self.status = status


class ErrorTail:
    """A ``stderr`` that keeps its last `LINES` lines (at most `WIDTH` characters each) and passes
    everything on to ``stream`` (None under a service without a console: nothing to pass on)."""

    LINES = 3
    WIDTH = 500

    def __init__(self, stream: IO[str] | None) -> None:
        self.stream = stream
        self._lines: deque[str] = deque(maxlen=self.LINES)
        self._partial = ""
        self._lock = threading.Lock()

    def write(self, text: str) -> int:
        with self._lock:
            *complete, self._partial = (self._partial + text).split("\n")
            self._lines.extend(line[: self.WIDTH] for line in complete if line.strip())
            self._partial = self._partial[-self.WIDTH :]
        if self.stream is not None:
            self.stream.write(text)
        return len(text)

    def flush(self) -> None:
        if self.stream is not None:
            self.stream.flush()

    def last(self) -> str:
        """The kept lines (and an unfinished one), joined by newlines."""
        with self._lock:
            return "\n".join([*self._lines, *([self._partial] if self._partial.strip() else [])])


@dataclass(frozen=True)
class ServiceModules:
    """pywin32's service modules (or fakes)."""

    servicemanager: Any
    win32service: Any
    win32serviceutil: Any
    pywintypes: Any

    @classmethod
    def load(cls) -> ServiceModules:
        import pywintypes
        import servicemanager
        import win32service
        import win32serviceutil

        return cls(servicemanager, win32service, win32serviceutil, pywintypes)


def service_class(run: HelperRun, argv: list[str], modules: ServiceModules) -> type[Any]:
    """The ``ServiceFramework`` subclass whose ``SvcDoRun`` runs ``run(argv, stop_hook)``; its
    ``status`` is the helper's exit status once it returned."""
    servicemanager, win32service = modules.servicemanager, modules.win32service
    framework: Any = modules.win32serviceutil.ServiceFramework

    class HelperService(framework):  # type: ignore[misc]
        _svc_name_ = SERVICE_NAME
        _svc_display_name_ = DISPLAY_NAME
        _svc_description_ = DESCRIPTION
        _svc_deps_: ClassVar[list[str]] = list(DEPENDENCIES)
        status: ClassVar[int | None] = None

        def __init__(self, args: Any) -> None:
            super().__init__(args)
            self._lock = threading.Lock()
            self._stop: Callable[[], None] | None = None
            self._stop_requested = False
            self.reason = ""
            """The last lines the helper wrote to stderr before it failed."""

        def _register(self, stop: Callable[[], None]) -> None:
            with self._lock:
                self._stop = stop
                requested = self._stop_requested
            if requested:
                stop()

        def SvcStop(self) -> None:
            self.ReportServiceStatus(win32service.SERVICE_STOP_PENDING)
            with self._lock:
                self._stop_requested = True
                stop = self._stop
            if stop is not None:
                stop()

        def SvcRun(self) -> None:
            """pywin32's ``SvcRun`` (running, the body, stop pending), except that a failed helper
            stops as a failure (module docstring)."""
            self.ReportServiceStatus(win32service.SERVICE_RUNNING)
            self.SvcDoRun()
            status = type(self).status
            with self._lock:
                asked = self._stop_requested
            if status and not asked:
                self.ReportServiceStatus(
                    win32service.SERVICE_STOP_PENDING,
                    win32ExitCode=ERROR_SERVICE_SPECIFIC_ERROR,
                    svcExitCode=APPLICATION_CODE | (status & 0xFFFF),
                )
                raise HelperFailed(status, self.reason)
            self.ReportServiceStatus(win32service.SERVICE_STOP_PENDING)

        def SvcDoRun(self) -> None:
            servicemanager.LogMsg(
                servicemanager.EVENTLOG_INFORMATION_TYPE,
                servicemanager.PYS_SERVICE_STARTED,
                (SERVICE_NAME, ""),
            )
            tail = ErrorTail(sys.stderr)
            with contextlib.redirect_stderr(tail):
                status = run(list(argv), self._register)
            type(self).status = status
            if status:
                self.reason = tail.last()
                servicemanager.LogErrorMsg(str(HelperFailed(status, self.reason)))
            servicemanager.LogMsg(
                servicemanager.EVENTLOG_INFORMATION_TYPE,
                servicemanager.PYS_SERVICE_STOPPED,
                (SERVICE_NAME, ""),
            )

    return HelperService


def host(run: HelperRun, argv: list[str], modules: ServiceModules) -> int:
    """Serve as the service ``wgdesk-helper`` until the service manager stops it; from a console,
    run in the foreground. Returns the helper's exit status."""
    service = service_class(run, argv, modules)
    servicemanager = modules.servicemanager
    servicemanager.Initialize()
    servicemanager.PrepareToHostSingle(service)
    try:
        servicemanager.StartServiceCtrlDispatcher()
    except modules.pywintypes.error as exc:
        if exc.winerror != ERROR_FAILED_SERVICE_CONTROLLER_CONNECT:
            raise
        return run(argv, None)
    return service.status if service.status is not None else 1
