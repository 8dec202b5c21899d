"""The helper as a macOS LaunchDaemon (a `wgdesk.platforms.interface.Service`), and the daemon's
property list the installer puts in ``/Library/LaunchDaemons``.

launchd starts the helper at boot as root (``RunAtLoad``) and restarts it when it exits
(``KeepAlive``), so lockdown is in force from boot: the helper puts the kill switch back as soon as
it starts. launchd has no readiness protocol (unlike systemd's ``Type=notify``): clients wait for the
control socket instead. Hooks of tunnel configs run by ``/bin/sh`` with a clean environment.
"""

from __future__ import annotations

import os
import plistlib
from pathlib import Path
from typing import IO, Any

from wgdesk.platforms.darwin.runner import CLEAN_ENV
from wgdesk.platforms.unix.service import hold_lock, run_hook

LABEL = "org.wgdesk.helper"
PLIST_PATH = Path("/Library/LaunchDaemons") / f"{LABEL}.plist"
LOG_PATH = "/Library/Logs/wgdesk/helper.log"


def launch_daemon(program: str, arguments: tuple[str, ...] = ()) -> dict[str, Any]:
    """The LaunchDaemon's property list: the helper as root from boot, restarted when it exits."""
    return {
        "Label": LABEL,
        "ProgramArguments": [program, *arguments],
        "RunAtLoad": True,
        "KeepAlive": True,
        "UserName": "root",
        "ProcessType": "Interactive",
        "EnvironmentVariables": dict(CLEAN_ENV),
        "StandardOutPath": LOG_PATH,
        "StandardErrorPath": LOG_PATH,
    }


def launch_daemon_plist(program: str, arguments: tuple[str, ...] = ()) -> bytes:
    return plistlib.dumps(launch_daemon(program, arguments), sort_keys=True)


class DarwinService:
    """The backend's `Service`."""

    def privileged(self) -> bool:
        return os.geteuid() == 0

    def lock(self, state_dir: Path) -> IO[str] | None:
        state_dir.mkdir(mode=0o755, parents=True, exist_ok=True)
        return hold_lock(state_dir)

    def notify_ready(self, status: str | None) -> None:
        return None  # launchd has no readiness notification

    def run_hook(self, command: str, ifname: str, timeout: float) -> int:
        return run_hook(command, ifname, timeout, CLEAN_ENV)
