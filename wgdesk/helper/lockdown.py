"""Lockdown ("always require a tunnel"): the kill-switch table stays in place with no tunnel up.

The switch is helper-wide and persistent: its state lives in a root-owned file outside /run (a
tmpfs), ``/var/lib/wgdesk/lockdown.json`` by default (setting ``lockdown_file``), so a helper started
at boot blocks before anyone logs in. The administrator's ``lockdown`` setting decides who may turn
it: ``"user"`` (root and the control group, through ``set_lockdown``), ``"always"`` (forced on) or
``"never"`` (forced off); the forced policies ignore the file.

An unreadable, malformed or unsafe (not root's, or writable by others) state file counts as *on*:
a file nobody can trust must not open the machine. Writing a new state replaces it.
"""

from __future__ import annotations

import json
import os
import threading
from contextlib import suppress
from pathlib import Path
from typing import Any

from wgdesk.helper.logbook import LogBook

DEFAULT_FILE = "/var/lib/wgdesk/lockdown.json"
POLICIES = ("user", "always", "never")
FILE_MODE = 0o600
"""Mode of the state file (owner root): nothing but the helper reads it."""


class LockdownRefused(Exception):
    """The administrator's policy forces lockdown on or off; the message says how to change it."""


class Lockdown:
    """The effective lockdown state: the policy, then the stored choice."""

    def __init__(self, policy: str, path: Path, log: LogBook) -> None:
        if policy not in POLICIES:
            raise ValueError(f"lockdown policy must be one of {', '.join(POLICIES)}, not {policy!r}")
        self.policy = policy
        self.path = path
        self.log = log
        self._lock = threading.Lock()
        self._stored = self._read()

    @property
    def enabled(self) -> bool:
        """Whether the kill-switch table must stay in place even with no tunnel up."""
        if self.policy == "always":
            return True
        if self.policy == "never":
            return False
        with self._lock:
            return self._stored

    def as_dict(self) -> dict[str, Any]:
        """``{"enabled", "policy"}`` as the control protocol reports it."""
        return {"enabled": self.enabled, "policy": self.policy}

    def set(self, enabled: bool) -> None:
        """Store the user's choice (policy ``user`` only); raises `LockdownRefused`, `OSError`."""
        if self.policy != "user":
            raise LockdownRefused(
                f"lockdown is forced {'on' if self.policy == 'always' else 'off'} by the administrator "
                f'(lockdown = "{self.policy}" in /etc/wgdesk/helper.toml)'
            )
        with self._lock:
            self._write(enabled)
            self._stored = enabled

    # --- the state file -------------------------------------------------------------------------

    def _read(self) -> bool:
        if self.policy != "user":
            return self.policy == "always"
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            return False
        except OSError as e:
            self.log.error(None, f"lockdown: cannot read {self.path} ({e.strerror}); keeping lockdown on")
            return True
        try:
            st = os.fstat(fd)
            if st.st_uid != 0 or st.st_mode & 0o022:
                self.log.error(
                    None,
                    f"lockdown: {self.path} is not root's or is writable by others; keeping lockdown on "
                    "(`wgdeskctl lockdown off` writes a new one)",
                )
                return True
            data = json.loads(os.read(fd, 4096).decode("utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as e:
            self.log.error(None, f"lockdown: unreadable {self.path} ({e}); keeping lockdown on")
            return True
        finally:
            os.close(fd)
        value = data.get("enabled") if isinstance(data, dict) else None
        if not isinstance(value, bool):
            self.log.error(None, f"lockdown: {self.path} has no true/false 'enabled'; keeping lockdown on")
            return True
        return value

    def _write(self, enabled: bool) -> None:
        """Replace the file atomically (temporary file, fsync, rename, fsync of the directory)."""
        directory = self.path.parent
        directory.mkdir(mode=0o755, parents=True, exist_ok=True)
        tmp = directory / f".{self.path.name}.{os.getpid()}.tmp"
        with suppress(FileNotFoundError):
            tmp.unlink()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, FILE_MODE)
        try:
            os.fchmod(fd, FILE_MODE)
            os.write(fd, (json.dumps({"enabled": enabled}) + "\n").encode())
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            tmp.unlink()
            raise
        os.close(fd)
        os.replace(tmp, self.path)
        dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
