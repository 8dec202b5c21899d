"""What the helper as a service does the same way on every UNIX: create and hold its state directory,
trust a state file only when root owns it and nobody else may write it, run a config's hooks by
``/bin/sh`` with a clean environment."""

from __future__ import annotations

import fcntl
import os
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import IO

from wgdesk.platforms.interface import HelperRun

SH = "/bin/sh"


def prepare_directory(path: Path) -> None:
    """Create ``path`` (0755, with its parents) if missing. The UNIX defaults are under root's own
    ``/run``, ``/var`` and ``/etc``, where nobody else can create anything."""
    path.mkdir(mode=0o755, parents=True, exist_ok=True)


def private_file(fd: int) -> str | None:
    """Why the open file ``fd`` is not root's alone (another owner, or writable by group or others)."""
    status = os.fstat(fd)
    if status.st_uid != 0 or status.st_mode & 0o022:
        return "it is not root's or is writable by others"
    return None


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


class UnixService:
    """The parts of the backend's `wgdesk.platforms.interface.Service` every UNIX shares; a backend adds
    its ``paths``, ``notify_ready`` and the clean environment (``hook_env``) its hooks run in."""

    hook_env: Mapping[str, str]
    hook_shell = SH

    def host(self, run: HelperRun, argv: list[str]) -> int:
        """The service manager (systemd, launchd) runs the helper in the foreground and stops it with
        SIGTERM."""
        return run(argv, None)

    def privileged(self) -> bool:
        return os.geteuid() == 0

    def prepare_directory(self, path: Path) -> None:
        prepare_directory(path)

    def private_file(self, fd: int) -> str | None:
        return private_file(fd)

    def lock(self, state_dir: Path) -> IO[str] | None:
        return hold_lock(state_dir)

    def run_hook(self, command: str, ifname: str, timeout: float) -> int:
        return run_hook(command, ifname, timeout, self.hook_env, self.hook_shell)
