"""What the helper as a service does the same way on every UNIX: hold its state directory, run a
config's hooks by ``/bin/sh`` with a clean environment."""

from __future__ import annotations

import fcntl
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import IO

SH = "/bin/sh"


def hold_lock(state_dir: Path) -> IO[str] | None:
    """An exclusive ``flock`` on ``STATE_DIR/helper.lock``, held as long as the file stays open
    (None: another helper holds it)."""
    lock = open(state_dir / "helper.lock", "a")  # noqa: SIM115 - held for the process lifetime
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        lock.close()
        return None
    return lock


def run_hook(command: str, ifname: str, timeout: float, env: Mapping[str, str], sh: str = SH) -> int:
    """Run ``command`` (``%i``: the interface) by ``sh -c``; its exit status."""
    proc = subprocess.run(
        [sh, "-c", command.replace("%i", ifname)],
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd="/",
    )
    return proc.returncode
