"""The helper as a Windows service, and the job object its engines run in.

The service runs as LocalSystem, starts at boot, and depends on ``Nsi`` (network store interface:
the IP Helper API needs it) and ``TcpIp``, so it never starts before the network stack can be
configured. It is installed with ``sc.exe`` (`install_commands`; ``installers/windows/wgdesk.iss``
runs the same, which a test checks; the uninstaller `uninstall_commands`), restarted by the service
manager after a crash (the new helper undoes the old one's journals), and given an unrestricted
service SID so WFP filters and ACLs can name it. The helper runs under the service control
dispatcher as `service_host.HelperService` (`WindowsService.host`).

Every engine the helper starts is put in a job object with ``JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE``
(`EngineJob`): when the helper exits for any reason its handle to the job closes and Windows ends the
engines — no engine outlives the helper that journalled its tunnel.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path, PureWindowsPath
from typing import Any

from wgdesk.platforms.interface import HelperPaths, HelperRun
from wgdesk.platforms.windows import dlls
from wgdesk.platforms.windows.directories import Security, helper_paths, program_data
from wgdesk.platforms.windows.service_host import (
    DEPENDENCIES,
    DESCRIPTION,
    DISPLAY_NAME,
    SERVICE_NAME,
    ServiceModules,
    host,
)

RESTARTS = "restart/2000/restart/5000/none/0"
"""After a failure: restart after 2 s, then 5 s, then stay down (counts reset after a day), as
wgdesk.iss. A failure is a crash, and — with the failure-actions flag (``sc.exe failureflag … 1``) —
also a stop reported with an error (`service_host`: a helper returning a non-zero status). Microsoft
documents that a change of the flag takes effect the next time the system starts."""

JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE = 0x00002000
JOB_OBJECT_LIMIT_DIE_ON_UNHANDLED_EXCEPTION = 0x00000400
ERROR_ALREADY_EXISTS = 183
LOCK_NAME = "Global\\wgdesk-helper"
"""The named mutex one helper holds (``Global``: one per machine, across sessions)."""
HEADER_CONSTANTS = {
    "ERROR_ALREADY_EXISTS": ERROR_ALREADY_EXISTS,
    "JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE": JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE,
    "JOB_OBJECT_LIMIT_DIE_ON_UNHANDLED_EXCEPTION": JOB_OBJECT_LIMIT_DIE_ON_UNHANDLED_EXCEPTION,
}


def _quoted(path: PureWindowsPath) -> str:
    text = str(path)
    if '"' in text:
        raise ValueError(f"a path with a quote: {text!r}")
    return f'"{text}"'


def install_commands(executable: PureWindowsPath) -> list[list[str]]:
    """Command lines that install the service for ``executable`` (the helper's exe): ``sc.exe``, and
    the helper's ``--install`` (its folder made sound, `install`) before the service's first start.
    The installer's ``[Run]`` runs the same, in this order (a test holds it to this list).

    The path is quoted in ``binPath``: an unquoted path with spaces (``C:\\Program Files\\…``) lets
    Windows try ``C:\\Program.exe`` first, a classic privilege escalation."""
    bin_path = _quoted(executable)
    return [
        [
            "sc.exe", "create", SERVICE_NAME,
            "binPath=", bin_path,
            "start=", "auto",
            "obj=", "LocalSystem",
            "depend=", "/".join(DEPENDENCIES),
            "DisplayName=", DISPLAY_NAME,
        ],
        ["sc.exe", "description", SERVICE_NAME, DESCRIPTION],
        ["sc.exe", "sidtype", SERVICE_NAME, "unrestricted"],
        ["sc.exe", "failure", SERVICE_NAME, "reset=", "86400", "actions=", RESTARTS],
        ["sc.exe", "failureflag", SERVICE_NAME, "1"],
        [str(executable), "--install"],
        ["sc.exe", "start", SERVICE_NAME],
    ]  # fmt: skip


def uninstall_commands(executable: PureWindowsPath) -> list[list[str]]:
    """Let the helper stop the service, wait until its process has ended (its engines and their
    adapters end with it) and remove what outlives it (``--uninstall``: the persistent WFP objects,
    the Wintun driver; `wgdesk.platforms.windows.uninstall`), then delete the service. No ``sc.exe
    stop`` before it: that returns before the service has stopped, and once the service has stopped
    its process ID is no longer reported, so ``--uninstall`` could not wait for the process to end.
    The installer's ``[UninstallRun]`` runs the same, in this order (a test holds it to this list)."""
    return [
        [str(executable), "--uninstall"],
        ["sc.exe", "delete", SERVICE_NAME],
    ]


class EngineJob:
    """A job object whose processes die when the helper's handle to it closes (``win32job`` and
    ``win32api`` are pywin32's modules, or fakes)."""

    def __init__(self, win32job: Any) -> None:
        self.win32job = win32job
        self.handle = win32job.CreateJobObject(None, "")
        info = win32job.QueryInformationJobObject(self.handle, win32job.JobObjectExtendedLimitInformation)
        info["BasicLimitInformation"]["LimitFlags"] |= (
            JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE | JOB_OBJECT_LIMIT_DIE_ON_UNHANDLED_EXCEPTION
        )
        win32job.SetInformationJobObject(self.handle, win32job.JobObjectExtendedLimitInformation, info)

    def add(self, process_handle: Any) -> None:
        """Put a started engine in the job (before it reads any input: it was created suspended or
        has not been handed its configuration yet)."""
        self.win32job.AssignProcessToJobObject(self.handle, process_handle)


class HelperLock:
    """The helper's named mutex, held while this object lives (`WindowsService.lock`)."""

    def __init__(self, kernel32: Any, handle: int) -> None:
        self.kernel32 = kernel32
        self.handle = handle

    def release(self) -> None:
        if self.handle:
            self.kernel32.CloseHandle(self.handle)
            self.handle = 0


class WindowsService:
    """`wgdesk.platforms.interface.Service` on Windows (``kernel32``/``shell32``/``ole32``: DLLs or
    fakes; ``security``: the directories' `directories.Security`, by default on pywin32)."""

    def __init__(
        self,
        kernel32: Any = None,
        shell32: Any = None,
        last_error: Any = dlls.last_error,
        ole32: Any = None,
        security: Security | None = None,
    ) -> None:
        self._kernel32 = kernel32
        self._shell32 = shell32
        self._ole32 = ole32
        self._security = security
        self._paths: HelperPaths | None = None
        self.last_error = last_error

    @property
    def kernel32(self) -> Any:
        if self._kernel32 is None:
            self._kernel32 = dlls.load("kernel32")
        return self._kernel32

    @property
    def shell32(self) -> Any:
        if self._shell32 is None:
            self._shell32 = dlls.load("shell32")
        return self._shell32

    @property
    def security(self) -> Security:
        if self._security is None:
            import win32file
            import win32security

            self._security = Security(win32security, win32file)
        return self._security

    @property
    def paths(self) -> HelperPaths:
        """Everything under ``%ProgramData%\\wgdesk`` (`directories`), found through the shell's
        known folder on first use."""
        if self._paths is None:
            ole32 = self._ole32 if self._ole32 is not None else dlls.load("ole32")
            self._paths = helper_paths(program_data(self.shell32, ole32) / "wgdesk")
        return self._paths

    def prepare_directory(self, path: Path) -> None:
        """Create or verify ``%ProgramData%\\wgdesk`` (where the settings are) and ``path`` with the
        directories between (`directories.Security.prepare`); refuses one others could change."""
        self.security.prepare(path, self.paths.persistent)

    def private_file(self, fd: int) -> str | None:
        return self.security.private_file(fd)

    def privileged(self) -> bool:
        """Running elevated (or as LocalSystem, which always is)."""
        return bool(self.shell32.IsUserAnAdmin())

    def lock(self, state_dir: Path) -> HelperLock | None:
        """The machine-wide named mutex; None when another helper holds it (``state_dir`` is not
        needed: a mutex name is one per machine, unlike a lock file per directory)."""
        handle = self.kernel32.CreateMutexW(None, 1, LOCK_NAME)
        if not handle:
            return None
        if self.last_error() == ERROR_ALREADY_EXISTS:
            self.kernel32.CloseHandle(handle)
            return None
        return HelperLock(self.kernel32, handle)

    def host(self, run: HelperRun, argv: list[str]) -> int:
        """Under the service control dispatcher (`service_host.host`); ``--install`` makes the
        helper's folder sound before the service first starts (`install.main`); ``--uninstall``
        removes what uninstalling must remove beyond files (`uninstall.main`); ``--stop`` stops the
        service and waits until its process has ended (`service_stop.main`: what an upgrade runs
        first)."""
        if argv == ["--install"]:
            from wgdesk.platforms.windows.install import main as install

            return install(self, lambda: self.security)
        if argv == ["--uninstall"]:
            from wgdesk.platforms.windows.uninstall import main as uninstall

            return uninstall()
        if argv == ["--stop"]:
            from wgdesk.platforms.windows.service_stop import main as stop

            return stop()
        return host(run, argv, ServiceModules.load())

    def notify_ready(self, status: str | None) -> None:
        """Nothing: the service framework reports "running" to the service manager (`service_host`)."""

    def run_hook(self, command: str, ifname: str, timeout: float) -> int:
        """``cmd.exe /d /c COMMAND`` (``%i`` replaced by the interface; ``WIREGUARD_TUNNEL_NAME`` set, as
        wireguard-windows does) with a clean environment: System32 on ``PATH`` only, no AutoRun."""
        system_root = os.environ.get("SYSTEMROOT", r"C:\Windows")
        system32 = str(PureWindowsPath(system_root, "System32"))
        environment = {"SystemRoot": system_root, "PATH": system32, "WIREGUARD_TUNNEL_NAME": ifname}
        proc = subprocess.run(
            [str(PureWindowsPath(system32, "cmd.exe")), "/d", "/c", command.replace("%i", ifname)],
            env=environment,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            cwd=system32,
        )
        return proc.returncode
