"""Starting an engine on Windows (the backend's `wgdesk.platforms.interface.EngineHost`).

On Windows the engine creates its own Wintun adapter, UAPI pipe and UDP sockets (a Wintun session
and a pipe cannot be handed to another process the way Linux passes descriptors), so the helper only
starts ``executable -f IFNAME`` — without a console window, in a process group of its own, with
``WGDESK_PURE_PYTHON=1`` (the compiled data path reads the tunnel's ``fd``, which on Windows is the
wake-up socket, not the device) — and puts it in the helper's kill-on-close job (`service.EngineJob`),
so no engine outlives the helper. Handing over UDP sockets and dropping privileges stay refused: the
engine runs as the service's account.
"""

from __future__ import annotations

import importlib
import os
import subprocess
from collections.abc import Callable
from pathlib import PureWindowsPath
from typing import Any

from wgdesk.platforms.interface import EngineLaunch
from wgdesk.platforms.unsupported import MissingEngineHost
from wgdesk.platforms.windows.service import EngineJob

CREATE_NEW_PROCESS_GROUP = 0x00000200
CREATE_NO_WINDOW = 0x08000000
HEADER_CONSTANTS = {
    "CREATE_NEW_PROCESS_GROUP": CREATE_NEW_PROCESS_GROUP,
    "CREATE_NO_WINDOW": CREATE_NO_WINDOW,
}


class WindowsEngineHost(MissingEngineHost):
    """``job`` makes the job object on first use (pywin32's ``win32job``; a fake in the tests)."""

    def __init__(self, job: Callable[[], EngineJob] | None = None, popen: Any = subprocess.Popen) -> None:
        super().__init__("win32")
        self._make_job = job or (lambda: EngineJob(importlib.import_module("win32job")))
        self._job: EngineJob | None = None
        self.popen = popen

    def start(self, launch: EngineLaunch) -> subprocess.Popen[bytes]:
        system_root = os.environ.get("SYSTEMROOT", r"C:\Windows")
        environment = {
            "SystemRoot": system_root,
            "PATH": str(PureWindowsPath(system_root, "System32")),
            **launch.environment,
            "WGDESK_PURE_PYTHON": "1",
        }
        if self._job is None:
            self._job = self._make_job()
        proc: subprocess.Popen[bytes] = self.popen(
            [launch.executable, "-f", launch.ifname],
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            creationflags=CREATE_NEW_PROCESS_GROUP | CREATE_NO_WINDOW,
        )
        try:
            self._job.add(proc._handle)  # type: ignore[attr-defined]  # Windows Popen keeps its process handle
        except BaseException:
            proc.kill()
            raise
        return proc
