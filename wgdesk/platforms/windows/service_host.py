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
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from wgdesk.platforms.interface import HelperRun

SERVICE_NAME = "wgdesk-helper"
DISPLAY_NAME = "wgdesk helper"
DESCRIPTION = "Brings wgdesk's WireGuard tunnels up and down for the wgdesk app."
DEPENDENCIES = ("Nsi", "TcpIp")
ERROR_FAILED_SERVICE_CONTROLLER_CONNECT = 1063
HEADER_CONSTANTS = {"ERROR_FAILED_SERVICE_CONTROLLER_CONNECT": ERROR_FAILED_SERVICE_CONTROLLER_CONNECT}


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

        def SvcDoRun(self) -> None:
            servicemanager.LogMsg(
                servicemanager.EVENTLOG_INFORMATION_TYPE,
                servicemanager.PYS_SERVICE_STARTED,
                (SERVICE_NAME, ""),
            )
            status = run(list(argv), self._register)
            type(self).status = status
            if status:
                servicemanager.LogErrorMsg(f"{SERVICE_NAME} stopped with status {status}: see its log")
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
