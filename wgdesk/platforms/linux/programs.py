"""The programs the Linux backend runs, found once by absolute path, and the one way it runs them.

External programs are run by absolute path, as a list argv, with a clean environment; nothing here
ever builds a shell string. A failure raises `CommandError` (a `PlatformError`) whose message names
the command and quotes the program's answer.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence

from wgdesk.platforms.commands import run

CLEAN_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"}


def _find(name: str, *dirs: str) -> str:
    for d in dirs:
        p = os.path.join(d, name)
        if os.access(p, os.X_OK):
            return p
    return os.path.join(dirs[0], name)


IP = _find("ip", "/usr/sbin", "/sbin", "/usr/bin", "/bin")
NFT = _find("nft", "/usr/sbin", "/sbin", "/usr/bin")
RESOLVECTL = _find("resolvectl", "/usr/bin", "/bin")
RESOLVCONF = _find("resolvconf", "/usr/sbin", "/sbin", "/usr/bin")
NMCLI = _find("nmcli", "/usr/bin", "/bin")
IW = _find("iw", "/usr/sbin", "/sbin", "/usr/bin")
PING = _find("ping", "/usr/bin", "/bin", "/usr/sbin", "/sbin")
MOUNT = _find("mount", "/usr/bin", "/bin")
UMOUNT = _find("umount", "/usr/bin", "/bin")
UNSHARE = _find("unshare", "/usr/bin", "/bin")
SH = "/bin/sh"


def command(
    argv: Sequence[str], stdin: str | None = None, check: bool = True, timeout: float = 30.0
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` (absolute program path) with a clean environment; raise `CommandError` on failure."""
    return run(argv, CLEAN_ENV, stdin=stdin, check=check, timeout=timeout)
