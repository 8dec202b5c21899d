"""Accounts and stopping a recorded process, the same on every UNIX (the Linux and macOS backends'
`wgdesk.platforms.interface.Identity` build on it; each says how it reads a process's start time)."""

from __future__ import annotations

import grp
import os
import pwd
import signal
import time
from collections.abc import Callable


class UnixAccounts:
    """The account database through `grp` and `pwd`."""

    def group_id(self, name: str) -> int | None:
        try:
            return grp.getgrnam(name).gr_gid
        except KeyError:
            return None

    def account_ids(self, user: str) -> tuple[int, int]:
        pw = pwd.getpwnam(user)
        return pw.pw_uid, pw.pw_gid


def terminate_recorded(pid: int, start_time: int | None, start_time_of: Callable[[int], int | None]) -> None:
    """SIGTERM, then SIGKILL, each only while ``pid`` is still the process of ``start_time`` (a pid
    reused by another process is never signalled; without a start time nothing is)."""
    if start_time is None or start_time_of(pid) != start_time:
        return
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        for _ in range(50):
            if start_time_of(pid) != start_time:
                return
            time.sleep(0.05)
