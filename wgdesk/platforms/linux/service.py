"""The helper as a systemd service (``Type=notify``): root, one helper per state directory, readiness
sent to ``$NOTIFY_SOCKET``, and the hooks of tunnel configs run by ``/bin/sh``."""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path

from wgdesk.platforms.interface import HelperPaths
from wgdesk.platforms.linux.programs import CLEAN_ENV, SH
from wgdesk.platforms.unix.service import UnixService

PATHS = HelperPaths(
    settings=Path("/etc/wgdesk/helper.toml"), state=Path("/run/wgdesk"), persistent=Path("/var/lib/wgdesk")
)
"""``/run`` is a tmpfs: the journals go with the kernel state they undo at reboot."""


class LinuxService(UnixService):
    """The backend's `wgdesk.platforms.interface.Service`."""

    paths = PATHS
    hook_env = CLEAN_ENV
    hook_shell = SH

    def notify_ready(self, status: str | None) -> None:
        """``READY=1`` (and ``STATUS=``) to systemd; nothing happens without ``$NOTIFY_SOCKET``, a
        failure is only logged. The variable is removed, so engines and hooks do not inherit it."""
        path = os.environ.pop("NOTIFY_SOCKET", "")
        if not path or path[0] not in "/@":
            return
        address = "\0" + path[1:] if path[0] == "@" else path
        message = "READY=1" + (f"\nSTATUS={status}" if status else "")
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
                s.connect(address)
                s.sendall(message.encode())
        except OSError as e:
            logging.getLogger(__name__).warning("could not notify systemd on %s: %s", path, e)
