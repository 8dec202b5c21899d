"""Lockdown ("always require a tunnel"): the kill-switch table stays in place with no tunnel up.

The switch is helper-wide and persistent: its state lives in a root-owned file outside /run (a
tmpfs), ``/var/lib/wgdesk/lockdown.json`` by default (setting ``lockdown_file``; other OSes: the
service's ``paths``), so a helper started
at boot blocks before anyone logs in. The administrator's ``lockdown`` setting decides who may turn
it: ``"user"`` (root and the control group, through ``set_lockdown``), ``"always"`` (forced on) or
``"never"`` (forced off); the forced policies ignore the file.

An unreadable, malformed or unsafe (not root's, or writable by others; on Windows an owner or ACL that
lets others than SYSTEM and Administrators change it: the service's ``private_file``) state file
counts as *on*:
a file nobody can trust must not open the machine. Writing a new state replaces it.

A *pause* (captive portals: a hotel's Wi-Fi login page needs traffic before any tunnel can come up)
lifts lockdown's block for at most ``lockdown_pause_max`` seconds. It lives in memory only: a helper
that restarts or crashes during a pause comes back blocking. It pauses lockdown, never a tunnel's
own kill switch. The deadline is kept on the monotonic clock (a changed wall clock does not stretch
it); ``paused_until`` reports it as Unix time.

`LockdownController` puts that state into the firewall: it owns the kill-switch table (the tunnels
with a kill switch of their own, plus every tunnel of this helper while lockdown blocks), its
failsafe when nft fails, and the pause timer. It works under its own lock, never the tunnel
manager's, so a lockdown change or the end of a pause never waits for a bring-up that holds that one.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wgdesk.helper.errors import TunnelError
from wgdesk.helper.logbook import LogBook
from wgdesk.platforms import backend
from wgdesk.platforms.files import NOFOLLOW, write_durably
from wgdesk.platforms.interface import KillSwitch, KillSwitchMember

if TYPE_CHECKING:
    from wgdesk.helper.events import Events
    from wgdesk.helper.state import Tunnel
    from wgdesk.platforms.interface import Firewall

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
            unsafe = backend().service.private_file(fd)  # UNIX: root's, 0644 at most; Windows: its ACL
            if unsafe is not None:
                self.log.error(
                    None,
                    f"lockdown: {self.path}: {unsafe}; keeping lockdown on "
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


class LockdownController:
    """The kill-switch table and lockdown (its pause included), kept in line with the tunnels.

    ``members`` are the tunnels with a kill switch of their own; the tunnel manager and the bring-up
    steps change it (under the manager's lock) and then call `apply`. Everything here runs under the
    firewall lock only: `apply` copies the state it reads, and whoever changes it applies again."""

    def __init__(
        self,
        state: Lockdown,
        firewall: Firewall,
        tunnels: Callable[[], list[Tunnel]],
        lan: tuple[str, ...],
        log: LogBook,
        events: Events,
    ) -> None:
        self.state = state
        """The policy, the stored choice and the pause (`Lockdown`)."""
        self.firewall = firewall
        self.tunnels = tunnels
        """The tunnels now, read without the manager's lock (`TunnelManager.snapshot`)."""
        self.lan = lan
        """Local networks the kill switch lets through (setting ``allow_lan``)."""
        self.log = log
        self.events = events
        self.members: dict[str, KillSwitchMember] = {}
        """Tunnels with a kill switch of their own (the table lets them out and blocks the rest)."""
        self._lock = threading.RLock()
        """Serialises the kill-switch table and lockdown (its pause included) on their own, so they
        never wait for the manager's lock (taken after it, never before)."""
        self._pause_timer: threading.Timer | None = None
        """Ends the running lockdown pause (`pause_lockdown`)."""

    @property
    def enabled(self) -> bool:
        return self.state.enabled

    @property
    def blocking(self) -> bool:
        return self.state.blocking

    @property
    def error(self) -> str | None:
        """Why lockdown's firewall is not in place (the failsafe stands in), or None."""
        return self.state.error

    def apply(self) -> None:
        """Put the kill-switch table in line with the members (and lockdown, unless paused): replaced
        in one transaction, or deleted when nothing needs it. Under the firewall lock only (never
        waits for a bring-up); the state it reads is copied, and whoever changes it applies again."""
        with self._lock:
            members = dict(self.members)
            tunnels = self.tunnels()
            lockdown = self.state.blocking
            if lockdown:
                # every tunnel of this helper is let out, whether or not it has a kill switch itself
                for t in tunnels:
                    if t.name not in members:
                        members[t.name] = KillSwitchMember(t.name, t.ifname, t.fwmark, t.listen_port)
            bypass = [t.fwmark for t in tunnels if t.bypass]
            # included apps' packets: the output hook sees the first route's interface, not the tunnel
            # (the include table's leak guard drops them anywhere else)
            bypass += [t.include_mark for t in tunnels if t.include_mark]
            if members or lockdown:
                self.firewall.apply_kill_switch(KillSwitch(tuple(members.values()), self.lan, tuple(bypass)))
            else:
                self.firewall.remove_kill_switch()
            if self.state.error is not None:
                self.firewall.unblock_all()
                self.state.error = None
                self.log.info(
                    None, "lockdown: the firewall is in place; the failsafe routing block is lifted"
                )

    def refilter(self) -> None:
        """Apply again when anything is in the table (a tunnel's split-tunnel rules changed)."""
        if self.members or self.state.enabled:
            self.apply()

    def block_or_failsafe(self, what: str) -> None:
        """Apply lockdown's block; when nft fails, block with the failsafe rules instead (fail
        closed) and say so. Raises only when even that fails."""
        try:
            self.apply()
        except Exception as e:
            reason = f"could not put the kill switch in place ({what}): {e}"
            with self._lock:
                self.state.error = reason
                self.firewall.block_all()
            self.log.error(
                None,
                f"lockdown: {reason}; blocking all routed traffic by the failsafe instead (tunnels "
                "cannot work either) until the firewall works",
            )

    def enforce(self) -> None:
        """At helper start, before anything else: with lockdown on, the table goes in at once
        (no members yet: recovery adds those of blocked tunnels). If nft fails, the failsafe
        blocks instead; if that fails too, this raises (the helper then does not start)."""
        if not self.state.enabled:
            return
        self.block_or_failsafe("at start")
        if self.state.error is None:
            self.log.info(
                None, f"lockdown is on ({self._origin()}): traffic is blocked except through tunnels"
            )

    def after_restart(self) -> None:
        """Once recovery has found the blocked tunnels (`members`): the table as they and lockdown
        need it, and what a previous helper left that nothing needs any more removed."""
        if self.state.enabled:
            self.block_or_failsafe("after a restart")
        elif self.members:
            self.apply()
        elif self.firewall.kill_switch_present():
            # left by a helper stopped in lockdown, which is off now (the administrator's policy
            # changed, or the state file went): nothing needs it any more
            self.firewall.remove_kill_switch()
            self.log.warning(None, "lockdown is off: removed the kill switch a previous helper left in place")
        if not self.state.enabled and self.firewall.blocking_all():
            self.firewall.unblock_all()
            self.log.warning(None, "lockdown is off: removed the failsafe block a previous helper left")

    def lockdown_state(self) -> dict[str, Any]:
        """``{"enabled", "policy", "paused_until", "pause_max", "error"}`` (the ``lockdown`` object of
        ``version``)."""
        return self.state.as_dict()

    def set_lockdown(self, enabled: bool) -> dict[str, Any]:
        """Turn lockdown on or off (policy ``user`` only) and apply it at once; persistent. Takes the
        firewall lock, not the manager's: it does not wait for a bring-up."""
        with self._lock:
            try:
                self.state.set(enabled)
            except LockdownRefused as e:
                raise TunnelError("denied", str(e)) from e
            except OSError as e:
                raise TunnelError(
                    "failed", f"could not store the lockdown setting in {self.state.path}: {e.strerror}"
                ) from e
            try:
                self._end_pause()  # an explicit choice ends a pause
                if enabled or self.members:
                    self.apply()
                else:
                    self.firewall.remove_kill_switch()
                    if self.state.error is not None:
                        self.firewall.unblock_all()
                        self.state.error = None
            except Exception as e:
                self.log.error(None, f"lockdown: could not apply the kill switch: {e}")
                raise TunnelError("failed", f"lockdown stored but not applied: {e}") from e
            self.log.info(
                None,
                "lockdown on: traffic is blocked except through tunnels"
                if enabled
                else "lockdown off: traffic flows normally while no tunnel with a kill switch is up",
            )
            state = self.state.as_dict()
        self.events.publish({"event": "lockdown", **state})
        return state

    def pause_lockdown(self, seconds: int) -> dict[str, Any]:
        """Lift lockdown's block for ``seconds`` (captive portals): with no tunnel up, the table goes;
        tunnels' own kill switches stay. In memory only; a timer puts the block back. The pause
        lives under the firewall lock, so it ends on time even while a bring-up holds the manager's."""
        with self._lock:
            try:
                deadline = self.state.pause(seconds)
            except PauseRefused as e:
                raise TunnelError(e.code, str(e)) from e
            if self._pause_timer is not None:
                self._pause_timer.cancel()
            timer = threading.Timer(max(0.0, deadline - time.monotonic()), self._pause_expired, (deadline,))
            timer.daemon = True
            timer.name = "lockdown-pause"
            self._pause_timer = timer
            timer.start()
            try:
                self.apply()
            except Exception as e:
                self._end_pause()
                self.log.error(None, f"lockdown: could not lift the block for the pause: {e}")
                raise TunnelError("failed", f"could not pause lockdown: {e}") from e
            state = self.state.as_dict()
            self.log.warning(
                None,
                f"lockdown paused for {seconds} s: traffic flows outside tunnels until the pause ends "
                "(tunnels' own kill switches still apply)",
            )
        self.events.publish({"event": "lockdown", **state})
        return state

    def resume_lockdown(self) -> dict[str, Any]:
        """End a lockdown pause now (nothing to do without one)."""
        with self._lock:
            was_paused = self.state.paused_until is not None
            try:
                self._end_pause()
            except Exception as e:
                self.log.error(None, f"lockdown: could not put the block back: {e}")
                raise TunnelError("failed", f"could not resume lockdown: {e}") from e
            state = self.state.as_dict()
            if was_paused:
                self.log.info(None, "lockdown resumed: traffic is blocked again except through tunnels")
        if was_paused:
            self.events.publish({"event": "lockdown", **state})
        return state

    def stop(self) -> None:
        """At an orderly helper stop, after every tunnel went down: a pause never outlives the
        helper, and with lockdown on the table stays so nothing leaks while it is stopped."""
        if self._pause_timer is not None:
            self._pause_timer.cancel()
            self._pause_timer = None
        self.state.resume()
        if not self.state.enabled:
            return
        try:
            self.apply()
        except Exception as e:
            self.log.error(None, f"lockdown: could not leave the kill switch in place: {e}")
        else:
            self.log.warning(
                None,
                "lockdown is on: the kill switch stays in place while the helper is stopped; "
                "`wgdeskctl lockdown off` with the helper running, or removing the package, "
                "lifts it",
            )

    def _end_pause(self) -> None:
        """Forget the pause and its timer, and put lockdown's block back (call with the firewall
        lock held)."""
        if self._pause_timer is not None:
            self._pause_timer.cancel()
            self._pause_timer = None
        if self.state.pause_deadline() is not None:
            self.state.resume()
            if self.state.enabled:
                self.apply()

    def _pause_expired(self, deadline: float) -> None:
        with self._lock:
            if self.state.pause_deadline() != deadline:
                return  # replaced or ended meanwhile
            self._pause_timer = None
            self.state.resume()
            if self.state.enabled:
                self.block_or_failsafe("when the pause ended")
            elif self.members:
                try:
                    self.apply()
                except Exception as e:
                    self.log.error(None, f"the pause ended but the kill switch could not be applied: {e}")
            if self.state.error is None:
                self.log.info(None, "lockdown pause ended: traffic is blocked again except through tunnels")
            state = self.state.as_dict()
        self.events.publish({"event": "lockdown", **state})

    def _origin(self) -> str:
        return "forced by the administrator" if self.state.policy == "always" else str(self.state.path)
