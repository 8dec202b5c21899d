"""Processes on Windows: the start time tells a reused pid from the engine that was started, and only
that process is terminated (fake win32api/win32process)."""

from __future__ import annotations

import datetime
from typing import Any

from wgdesk.platforms.windows.identity import WindowsIdentity

STARTED = datetime.datetime(2026, 12, 7, 22, 0, tzinfo=datetime.UTC)


class Fake:
    def __init__(self, created: dict[int, datetime.datetime]) -> None:
        self.created = created
        self.terminated: list[int] = []
        self.closed = 0

    def OpenProcess(self, access: int, inherit: bool, pid: int) -> int:
        if pid not in self.created:
            raise OSError(87, "no such process")
        return pid

    def GetProcessTimes(self, handle: int) -> dict[str, Any]:
        return {"CreationTime": self.created[handle], "ExitTime": None}

    def TerminateProcess(self, handle: int, code: int) -> None:
        self.terminated.append(handle)

    def CloseHandle(self, handle: int) -> None:
        self.closed += 1


def test_start_time_and_terminate_only_the_same_process() -> None:
    fake = Fake({100: STARTED, 200: STARTED + datetime.timedelta(seconds=5)})
    identity = WindowsIdentity(None, fake, fake)
    started = identity.start_time(100)
    assert started == int(STARTED.timestamp() * 1_000_000)
    assert identity.start_time(999) is None
    identity.terminate(200, started)  # pid 200 started later: a reused pid, left alone
    identity.terminate(999, started)  # gone
    identity.terminate(100, started)
    assert fake.terminated == [100]
    assert fake.closed == 3, "every handle opened is closed"
