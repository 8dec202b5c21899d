"""Lockdown ("always require a tunnel"): the kill-switch table stays in place with no tunnel up.

The switch is helper-wide and persistent: its state lives in a root-owned file outside /run (a
tmpfs), ``/var/lib/wgdesk/lockdown.json`` by default (setting ``lockdown_file``), so a helper started
at boot blocks before anyone logs in. The administrator's ``lockdown`` setting decides who may turn
it: ``"user"`` (root and the control group, through ``set_lockdown``), ``"always"`` (forced on) or
``"never"`` (forced off); the forced policies ignore the file.

An unreadable, malformed or unsafe (not root's, or writable by others) state file counts as *on*:
a file nobody can trust must not open the machine. Writing a new state replaces it.

A *pause* (captive portals: a hotel's Wi-Fi login page needs traffic before any tunnel can come up)
lifts lockdown's block for at most ``lockdown_pause_max`` seconds. It lives in memory only: a helper
that restarts or crashes during a pause comes back blocking. It pauses lockdown, never a tunnel's
own kill switch. The deadline is kept on the monotonic clock (a changed wall clock does not stretch
it); ``paused_until`` reports it as Unix time.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

from wgdesk.helper.logbook import LogBook
from wgdesk.platforms.files import NOFOLLOW, write_durably

DEFAULT_FILE = "/var/lib/wgdesk/lockdown.json"
POLICIES = ("user", "always", "never")
FILE_MODE = 0o600
"""Mode of the state file (owner root): nothing but the helper reads it."""


class LockdownRefused(Exception):
    """The administrator's policy forces lockdown on or off; the message says how to change it."""


class PauseRefused(Exception):
    """A pause that cannot be: ``code`` is the wire error code (``denied``: the administrator forbids
    pausing; ``conflict``: lockdown is off; ``invalid``: seconds out of range)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class Lockdown:
    """The effective lockdown state: the policy, then the stored choice."""

    def __init__(self, policy: str, path: Path, log: LogBook, pause_max: int = 0) -> None:
        if policy not in POLICIES:
            raise ValueError(f"lockdown policy must be one of {', '.join(POLICIES)}, not {policy!r}")
        self.policy = policy
        self.path = path
        self.log = log
        self.pause_max = pause_max
        """Longest pause in seconds (0: pausing is forbidden)."""
        self._lock = threading.Lock()
        self._stored = self._read()
        self._pause: tuple[float, float] | None = None
        """(monotonic deadline, the same as Unix time) of the running pause, or None."""
        self.error: str | None = None
        """Why lockdown's firewall is not in place (the `failsafe` routing block stands in), or None."""

    @property
    def enabled(self) -> bool:
        """Whether the kill-switch table must stay in place even with no tunnel up."""
        if self.policy == "always":
            return True
        if self.policy == "never":
            return False
        with self._lock:
            return self._stored

    @property
    def paused_until(self) -> float | None:
        """Unix time the running pause ends, or None (no pause, or lockdown is off)."""
        with self._lock:
            pause = self._pause
        if pause is None or not self.enabled or pause[0] <= time.monotonic():
            return None
        return pause[1]

    @property
    def blocking(self) -> bool:
        """Whether lockdown's block applies now: lockdown is on and not paused."""
        return self.enabled and self.paused_until is None

    def pause(self, seconds: int) -> float:
        """Pause lockdown for ``seconds`` (a new pause replaces a running one); returns its monotonic
        deadline. Raises `PauseRefused`."""
        if self.pause_max <= 0:
            raise PauseRefused(
                "denied",
                "the administrator does not allow pausing lockdown (lockdown_pause_max is 0 in "
                "/etc/wgdesk/helper.toml"
                + (', the default with lockdown = "always"' if self.policy == "always" else "")
                + ")",
            )
        if not self.enabled:
            raise PauseRefused("conflict", "lockdown is off: there is nothing to pause")
        if not 1 <= seconds <= self.pause_max:
            raise PauseRefused("invalid", f"seconds must be from 1 to {self.pause_max}, not {seconds}")
        deadline = time.monotonic() + seconds
        with self._lock:
            self._pause = (deadline, time.time() + seconds)
        return deadline

    def resume(self) -> bool:
        """End the pause (if any); True if one was running."""
        with self._lock:
            pause, self._pause = self._pause, None
        return pause is not None and pause[0] > time.monotonic()

    def pause_deadline(self) -> float | None:
        """Monotonic deadline of the stored pause (even a lapsed one), or None."""
        with self._lock:
            return None if self._pause is None else self._pause[0]

    def as_dict(self) -> dict[str, Any]:
        """``{"enabled", "policy", "paused_until", "pause_max", "error"}`` as the control protocol
        reports it."""
        until = self.paused_until
        return {
            "enabled": self.enabled,
            "policy": self.policy,
            "paused_until": None if until is None else round(until, 3),
            "pause_max": self.pause_max,
            "error": self.error,
        }

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
            fd = os.open(self.path, os.O_RDONLY | NOFOLLOW)  # close-on-exec: PEP 446
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
        write_durably(self.path, (json.dumps({"enabled": enabled}) + "\n").encode(), FILE_MODE)
