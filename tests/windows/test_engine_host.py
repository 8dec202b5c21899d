"""Starting an engine on Windows: argv, a clean environment with the pure data path, no console, and
the process put in the kill-on-close job (fakes of Popen and win32job)."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest

from tests.windows.test_service import FakeJob
from wgdesk.platforms.interface import EngineLaunch
from wgdesk.platforms.windows.engine_host import CREATE_NEW_PROCESS_GROUP, CREATE_NO_WINDOW, WindowsEngineHost
from wgdesk.platforms.windows.service import EngineJob


class FakeProcess:
    def __init__(self, argv: list[str], **options: Any) -> None:
        self.argv = argv
        self.options = options
        self._handle = "process-handle"
        self.killed = False

    def kill(self) -> None:
        self.killed = True


def test_engine_started_without_console_in_the_job(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYSTEMROOT", r"C:\Windows")
    job = FakeJob()
    host = WindowsEngineHost(job=lambda: EngineJob(job), popen=FakeProcess)
    launch = EngineLaunch(
        r"C:\Program Files\wgdesk\wgdesk-engine.exe", "wg-office", "SYSTEM", -1, -1, None, {"WG_LOG": "debug"}
    )
    proc: Any = host.start(launch)
    assert proc.argv == [r"C:\Program Files\wgdesk\wgdesk-engine.exe", "-f", "wg-office"]
    assert proc.options["env"] == {
        "SystemRoot": r"C:\Windows",
        "PATH": r"C:\Windows\System32",
        "WG_LOG": "debug",
        "WGDESK_PURE_PYTHON": "1",
    }
    assert proc.options["creationflags"] == CREATE_NEW_PROCESS_GROUP | CREATE_NO_WINDOW
    assert proc.options["stdin"] == subprocess.DEVNULL
    assert job.calls[-1] == ("Assign", "job", "process-handle")
    host.start(launch)
    assert [c[0] for c in job.calls].count("CreateJobObject") == 1, "one job for every engine"


def test_an_engine_that_cannot_join_the_job_is_killed() -> None:
    class BrokenJob(FakeJob):
        def AssignProcessToJobObject(self, job: str, process: str) -> None:
            raise OSError(5, "access denied")

    started: list[FakeProcess] = []

    def popen(argv: list[str], **options: Any) -> FakeProcess:
        started.append(FakeProcess(argv, **options))
        return started[-1]

    host = WindowsEngineHost(job=lambda: EngineJob(BrokenJob()), popen=popen)
    with pytest.raises(OSError):
        host.start(EngineLaunch("engine.exe", "wg0", "SYSTEM", -1, -1))
    assert started[0].killed
