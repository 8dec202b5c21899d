"""What installing wgdesk does beyond copying files and creating the service: the helper's folder
``%ProgramData%\\wgdesk`` made sound before the service first starts.

Any user can create that folder before wgdesk is installed (``ProgramData`` lets every user create
folders), and the helper refuses to start from a folder others could change (`directories`) — left
alone, the service would never start until an administrator deleted it. The installer runs elevated,
so it is the one place that repairs: ``wgdesk-helper --install`` (``installers/windows/wgdesk.iss``,
before ``sc.exe start``) moves such a folder aside, never deleting anyone's files, and creates it
anew with the protected descriptor (`directories.Security.reclaim`). A sound folder — an upgrade's —
is left as it is, settings and journals included. The service itself keeps refusing: it runs at every
boot, unattended, and must never take over a folder it did not make.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import UTC, datetime

from wgdesk.platforms.errors import PlatformError
from wgdesk.platforms.interface import Service
from wgdesk.platforms.windows.directories import Security


def main(
    service: Service,
    security: Callable[[], Security],
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> int:
    """``wgdesk-helper --install``: prints what it did to the helper's folder (``service.paths``);
    exit status 1 (and the reason on stderr) when not elevated or when the folder could not be made
    sound. ``security``: the service's `Security`, asked for once elevation is known."""
    if not service.privileged():
        print("wgdesk-helper --install: must run as Administrator", file=sys.stderr)
        return 1
    paths = service.paths
    try:
        done = security().reclaim(paths.state, paths.persistent, now())
    except PlatformError as exc:
        print(f"wgdesk-helper --install: {exc}", file=sys.stderr)
        return 1
    for line in done:
        print(line)
    return 0
