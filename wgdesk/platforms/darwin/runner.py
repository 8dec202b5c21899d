"""How the macOS backend runs the system's tools (`ifconfig`, `route`, `netstat`, `scutil`, `pfctl`):
one `Runner`, so tests drive the whole backend with a fake one that models a Mac (no Mac here).

Programs are absolute paths, run with a clean environment (``LC_ALL=C``: output parsed in English)
through `wgdesk.platforms.commands.run`; failures raise `CommandError` naming the command.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from typing import Protocol

from wgdesk.platforms.commands import run

CLEAN_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"}
IFCONFIG = "/sbin/ifconfig"
ROUTE = "/sbin/route"
NETSTAT = "/usr/sbin/netstat"
SCUTIL = "/usr/sbin/scutil"
PFCTL = "/sbin/pfctl"
DSCACHEUTIL = "/usr/bin/dscacheutil"
KILLALL = "/usr/bin/killall"


class Runner(Protocol):
    """Runs one command; raises `CommandError` when it fails (``check``) or cannot start."""

    def __call__(
        self, argv: Sequence[str], stdin: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]: ...


def system_runner(
    argv: Sequence[str], stdin: str | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """The real `Runner`."""
    return run(argv, CLEAN_ENV, stdin=stdin, check=check, timeout=15)
