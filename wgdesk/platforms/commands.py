"""Running external programs: the one command runner every OS module uses.

Programs are given by absolute path as a list argv (never a shell string) with an environment the
caller chooses; a failure raises `CommandError`, whose message names the command and quotes the OS's
answer.
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping, Sequence

from wgdesk.platforms.errors import PlatformError


class CommandError(PlatformError):
    """An external command failed."""

    def __init__(self, argv: Sequence[str], returncode: int, stderr: str) -> None:
        self.argv = list(argv)
        self.returncode = returncode
        self.stderr = stderr.strip()
        super().__init__(f"`{' '.join(self.argv)}` failed ({returncode}): {self.stderr or 'no message'}")


def run(
    argv: Sequence[str],
    env: Mapping[str, str],
    stdin: str | None = None,
    check: bool = True,
    timeout: float = 30.0,
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` with exactly ``env`` as its environment; raise `CommandError` when it cannot start,
    times out, or (with ``check``) exits non-zero."""
    try:
        proc = subprocess.run(
            list(argv),
            input=stdin,
            capture_output=True,
            text=True,
            errors="replace",  # e.g. an SSID that is not UTF-8
            env=dict(env),
            timeout=timeout,
            check=False,
            close_fds=True,
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        raise CommandError(argv, -1, str(e)) from e
    if check and proc.returncode != 0:
        raise CommandError(argv, proc.returncode, proc.stderr)
    return proc
