"""Accounts and processes on macOS (a `wgdesk.platforms.interface.Identity`): the account database
through `pwd`/`grp`, a process's start time from ``ps -o lstart=`` (seconds since the epoch), so a
reused pid is never taken for the engine that was recorded."""

from __future__ import annotations

import time

from wgdesk.platforms.darwin.runner import Runner
from wgdesk.platforms.unix.accounts import UnixAccounts, terminate_recorded

PS = "/bin/ps"


def parse_lstart(text: str) -> int | None:
    """``ps -o lstart=`` (``Mon Dec  7 22:41:05 2026``) as seconds since the epoch, local time."""
    try:
        return int(time.mktime(time.strptime(" ".join(text.split()), "%a %b %d %H:%M:%S %Y")))
    except ValueError:
        return None


class DarwinIdentity(UnixAccounts):
    def __init__(self, runner: Runner) -> None:
        self.runner = runner

    def start_time(self, pid: int) -> int | None:
        proc = self.runner([PS, "-p", str(pid), "-o", "lstart="], check=False)
        return parse_lstart(proc.stdout) if proc.returncode == 0 else None

    def terminate(self, pid: int, start_time: int | None) -> None:
        terminate_recorded(pid, start_time, self.start_time)
