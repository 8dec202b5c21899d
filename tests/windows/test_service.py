"""The helper service's installation command lines and the engines' job object (fake win32job)."""

from __future__ import annotations

import re
from pathlib import Path, PureWindowsPath
from typing import Any

import pytest

from wgdesk.platforms.windows import service

EXE = PureWindowsPath(r"C:\Program Files\wgdesk\wgdesk-helper.exe")


def test_install_runs_as_localsystem_at_boot_after_nsi_and_tcpip_with_a_quoted_path() -> None:
    create, description, sidtype, failure, failureflag, install, start = service.install_commands(EXE)
    assert create == [
        "sc.exe", "create", "wgdesk-helper",
        "binPath=", '"C:\\Program Files\\wgdesk\\wgdesk-helper.exe"',
        "start=", "auto",
        "obj=", "LocalSystem",
        "depend=", "Nsi/TcpIp",
        "DisplayName=", "wgdesk helper",
    ]  # fmt: skip
    assert description[:3] == ["sc.exe", "description", "wgdesk-helper"]
    assert sidtype == ["sc.exe", "sidtype", "wgdesk-helper", "unrestricted"]
    assert failure[:3] == ["sc.exe", "failure", "wgdesk-helper"] and "restart/2000" in failure[-1]
    # SERVICE_CONFIG_FAILURE_ACTIONS_FLAG: a stop reported with an error is a failure too
    assert failureflag == ["sc.exe", "failureflag", "wgdesk-helper", "1"]
    # the helper's folder made sound (a pre-created one moved aside) before the service first starts
    assert install == [r"C:\Program Files\wgdesk\wgdesk-helper.exe", "--install"]
    assert start == ["sc.exe", "start", "wgdesk-helper"]
    assert service.uninstall_commands(PureWindowsPath(r"C:\Program Files\wgdesk\wgdesk-helper.exe")) == [
        [r"C:\Program Files\wgdesk\wgdesk-helper.exe", "--uninstall"],
        ["sc.exe", "delete", "wgdesk-helper"],
    ]
    with pytest.raises(ValueError):
        service.install_commands(PureWindowsPath('C:\\x" evil'))


class FakeJob:
    JobObjectExtendedLimitInformation = 9

    def __init__(self) -> None:
        self.calls: list[Any] = []

    def CreateJobObject(self, attributes: Any, name: str) -> str:
        self.calls.append(("CreateJobObject", attributes, name))
        return "job"

    def QueryInformationJobObject(self, job: str, kind: int) -> dict[str, Any]:
        self.calls.append(("Query", job, kind))
        return {"BasicLimitInformation": {"LimitFlags": 0x8}, "IoInfo": {}}

    def SetInformationJobObject(self, job: str, kind: int, info: dict[str, Any]) -> None:
        self.calls.append(("Set", job, kind, info["BasicLimitInformation"]["LimitFlags"]))

    def AssignProcessToJobObject(self, job: str, process: str) -> None:
        self.calls.append(("Assign", job, process))


def test_engines_die_with_the_helper() -> None:
    fake = FakeJob()
    job = service.EngineJob(fake)
    job.add("engine-process")
    assert fake.calls == [
        ("CreateJobObject", None, ""),
        ("Query", "job", 9),
        ("Set", "job", 9, 0x8 | 0x2000 | 0x400),  # existing flags kept, kill-on-close added
        ("Assign", "job", "engine-process"),
    ]


ISS = Path(__file__).resolve().parents[2] / "installers/windows/wgdesk.iss"


def iss_entries(section: str) -> list[tuple[dict[str, str], list[str]]]:
    """The entries of a ``[Run]``-like section of wgdesk.iss: each line's ``Name: "value"`` fields
    and its command line (program and parameters split on blanks, ``{sys}\\`` and the service name
    macro replaced; ``""`` quoting inside a value ends the value there)."""
    text = ISS.read_text().split(f"[{section}]", 1)[1].split("\n[", 1)[0]
    entries = []
    for line in text.strip().splitlines():
        fields = dict(re.findall(r'(\w+): "([^"]*)"', line))
        if "Filename" not in fields:
            continue  # a comment
        program, parameters = (
            fields.get(key, "").replace("{sys}\\", "").replace("{#ServiceName}", service.SERVICE_NAME)
            for key in ("Filename", "Parameters")
        )
        entries.append((fields, [program, *parameters.split()]))
    return entries


def test_the_uninstaller_runs_the_same_commands_in_the_same_order() -> None:
    """wgdesk.iss's [UninstallRun], read as data: ``wgdesk-helper --uninstall`` (stops the service and
    waits for it), delete the service (then the group); the helper's exe is the service's."""
    entries = iss_entries("UninstallRun")
    assert all("RunOnceId" in fields for fields, _ in entries)
    commands = [command for _, command in entries]
    helper = PureWindowsPath("{app}", "wgdesk-helper.exe")
    assert commands[:2] == service.uninstall_commands(helper)
    assert commands[2:] == [["net.exe", "localgroup", "wgdesk", "/delete"]]


def test_the_installer_creates_the_service_the_same_way() -> None:
    """installers/windows/wgdesk.iss runs sc.exe and the helper's --install itself: same
    dependencies, account, SID type, and order."""
    iss = ISS.read_text()
    create = next(line for line in iss.splitlines() if 'Parameters: "create {#ServiceName}' in line)
    assert "start= auto" in create and "obj= LocalSystem" in create
    assert f"depend= {'/'.join(service.DEPENDENCIES)}" in create
    assert 'Parameters: "sidtype {#ServiceName} unrestricted"' in iss
    assert f"actions= {service.RESTARTS}" in iss
    helper = PureWindowsPath("{app}", "wgdesk-helper.exe")
    commands = [c for _, c in iss_entries("Run") if c[0] in ("sc.exe", str(helper))]
    # the same commands in the same order (create's quoting is checked above): the helper's
    # --install after the service exists and before its first start
    assert [c[:2] for c in commands] == [c[:2] for c in service.install_commands(helper)]
    install, start = [str(helper), "--install"], ["sc.exe", "start", service.SERVICE_NAME]
    assert install in commands and commands.index(install) < commands.index(start)
    assert ["sc.exe", "failureflag", service.SERVICE_NAME, "1"] in commands


class FakeKernel:
    def __init__(self, taken: bool) -> None:
        self.taken = taken
        self.calls: list[tuple[Any, ...]] = []

    def CreateMutexW(self, attributes: Any, owned: int, name: str) -> int:
        self.calls.append(("CreateMutexW", attributes, owned, name))
        return 0x44

    def CloseHandle(self, handle: int) -> None:
        self.calls.append(("CloseHandle", handle))


def test_one_helper_per_machine_by_a_global_mutex() -> None:
    from pathlib import Path

    free = FakeKernel(taken=False)
    held = service.WindowsService(free, last_error=lambda: 0).lock(Path("unused"))
    assert held is not None and free.calls == [("CreateMutexW", None, 1, "Global\\wgdesk-helper")]
    held.release()
    assert free.calls[-1] == ("CloseHandle", 0x44)
    taken = FakeKernel(taken=True)
    assert (
        service.WindowsService(taken, last_error=lambda: service.ERROR_ALREADY_EXISTS).lock(Path("x")) is None
    )
    assert taken.calls[-1] == ("CloseHandle", 0x44), (
        "the second helper's handle is closed, the mutex not taken"
    )


def test_hooks_run_by_cmd_with_a_clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import subprocess

    seen: dict[str, Any] = {}

    def run(argv: list[str], **options: Any) -> subprocess.CompletedProcess[str]:
        seen.update(argv=argv, **options)
        return subprocess.CompletedProcess(argv, 3, "", "")

    monkeypatch.setattr(subprocess, "run", run)
    monkeypatch.setenv("SYSTEMROOT", r"C:\Windows")
    monkeypatch.setenv("SECRET", "do not pass on")
    code = service.WindowsService(FakeKernel(False)).run_hook("netsh interface show interface %i", "wg0", 10)
    assert code == 3
    assert seen["argv"] == [r"C:\Windows\System32\cmd.exe", "/d", "/c", "netsh interface show interface wg0"]
    assert seen["env"] == {
        "SystemRoot": r"C:\Windows",
        "PATH": r"C:\Windows\System32",
        "WIREGUARD_TUNNEL_NAME": "wg0",
    }
    assert seen["timeout"] == 10 and seen["check"] is False
