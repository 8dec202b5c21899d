"""The helper as a macOS LaunchDaemon (a `wgdesk.platforms.interface.Service`), and the daemon's
property list the installer puts in ``/Library/LaunchDaemons``.

launchd starts the helper at boot as root (``RunAtLoad``) and restarts it when it exits
(``KeepAlive``); it runs ``boot-block`` first (``installers/macos/boot-block``), which loads the
tunnel-less kill switch the helper left for the next boot (`pf.PfFirewall`, ``boot-block.pf``)
before the helper starts, so lockdown holds from boot, not only from when the helper has started.
launchd has no readiness protocol (unlike systemd's ``Type=notify``): clients wait for the control
socket instead. Hooks of tunnel configs run by ``/bin/sh`` with a clean environment.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from wgdesk.platforms.darwin.runner import CLEAN_ENV
from wgdesk.platforms.interface import HelperPaths
from wgdesk.platforms.unix.service import UnixService

LABEL = "org.wgdesk.helper"
PLIST_PATH = Path("/Library/LaunchDaemons") / f"{LABEL}.plist"
HELPER = "/Applications/wgdesk.app/Contents/MacOS/wgdesk-helper"
LOG_PATH = "/var/log/wgdesk-helper.log"
PATHS = HelperPaths(
    settings=Path("/etc/wgdesk/helper.toml"),
    state=Path("/var/run/wgdesk"),
    persistent=Path("/Library/Application Support/wgdesk"),
)
"""The helper's files on macOS. Runtime state (control socket, journals, pf tokens, socket owners)
in ``/var/run/wgdesk``: macOS has no ``/run``, and launchd empties ``/var/run`` at boot as Linux's
tmpfs is. What outlives a reboot in ``/Library/Application Support/wgdesk``, the place Apple documents
for a system-wide daemon's support files (root:wheel 0755 all the way up), which already holds
``boot-block``; not ``/var/db``, which is Apple's own system databases, nor ``/var/lib``, which macOS
does not have."""
STATE_DIR = PATHS.state
BOOT_BLOCK = "/Library/Application Support/wgdesk/boot-block"
"""Run by the LaunchDaemon before the helper (which it then ``exec``s)."""


def launch_daemon(program: str = HELPER) -> dict[str, Any]:
    """The LaunchDaemon's property list (``installers/macos/org.wgdesk.helper.plist`` is this, as
    the .pkg installs it): root from boot, restarted when it exits; launchd runs a LaunchDaemon as
    root unless it names another user, and gives it a minimal environment."""
    return {
        "Label": LABEL,
        "ProgramArguments": [BOOT_BLOCK, program],
        "RunAtLoad": True,
        "KeepAlive": True,
        "ProcessType": "Interactive",
        "StandardErrorPath": LOG_PATH,
    }


class DarwinService(UnixService):
    """The backend's `Service`."""

    paths = PATHS
    hook_env = CLEAN_ENV

    def notify_ready(self, status: str | None) -> None:
        return None  # launchd has no readiness notification
