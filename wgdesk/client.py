"""The control-socket client used by ``wgdeskctl`` and the GUI (no Qt; stdlib only).

```python
c = HelperClient()                       # /run/wgdesk/helper.sock, or $WGDESK_SOCKET
c.up("home", config_text)                # config_text includes the secrets
for event in c.subscribe(): ...
```

The wire protocol is described in docs/control-protocol.md.

The connection is the backend's (`wgdesk.platforms.interface.ControlEndpoint`): a UNIX socket on
Linux and macOS, the named pipe ``\\.\\pipe\\wgdesk-helper`` on Windows.

The client sends private keys (`up`, `update`), and ``--socket`` / ``$WGDESK_SOCKET`` can point it at
any socket. So before it sends anything it asks the kernel who is listening (``SO_PEERCRED`` on
Linux, ``LOCAL_PEERCRED`` on macOS, the pipe's owner on Windows) and talks only to root (LocalSystem):
the helper always runs as root, and a socket another user serves is refused (`HelperUnavailable`,
code ``untrusted``) with nothing sent.
"""

from __future__ import annotations

import errno
import itertools
import json
import math
import os
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from wgdesk import platforms
from wgdesk.platforms.interface import Connection
from wgdesk.snapshots import Diagnosis, SnapshotError, TunnelSnapshot

_T = TypeVar("_T")

_ = platforms.backend().control  # loaded with the client's other imports, not at the first request (a
# process that becomes another user after importing, as tests/as_user.py does, may not read it then)

PROTOCOL_VERSION = 1
MAX_REPLY_BYTES = 64 << 20
PAUSE_SECONDS = 120
"""Length of a lockdown pause when the user does not say (`wgdeskctl lockdown pause`, the app)."""


class HelperError(Exception):
    """The helper refused a request or failed; ``code`` is the protocol error code."""

    def __init__(self, message: str, code: str = "failed") -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _typed(decode: Callable[[object], _T], value: object) -> _T:
    try:
        return decode(value)
    except SnapshotError as e:
        raise HelperError(f"the helper sent a malformed reply: {e}", "malformed") from None


class HelperUnavailable(HelperError):
    """No helper answers on the socket."""


class HelperPermissionDenied(HelperError):
    """The helper (or the socket's permissions) refused this user."""


class RestartRequired(HelperError):
    """A live update was refused because keys changed that only a reconnect can apply; nothing changed.

    ``keys`` names them as the config does (``PrivateKey``, ``Address``, ``DNS``, ``AllowedIPs`` …).
    """

    def __init__(self, message: str, keys: list[str]) -> None:
        super().__init__(message, "restart_required")
        self.keys = keys


def pause_left(lockdown: dict[str, Any], now: float | None = None) -> float | None:
    """Seconds left of a lockdown pause, from the helper's ``lockdown`` object (its
    ``paused_until``), or None when none runs."""
    until = lockdown.get("paused_until")
    if not lockdown.get("enabled") or isinstance(until, bool) or not isinstance(until, int | float):
        return None
    left = float(until) - (time.time() if now is None else now)
    return left if left > 0 else None


def minutes_seconds(seconds: float) -> str:
    """``1:42`` for 102 seconds (rounded up, so "0:00 left" never shows while a pause runs)."""
    whole = max(0, math.ceil(seconds))
    return f"{whole // 60}:{whole % 60:02d}"


def default_socket_path() -> str:
    return os.environ.get("WGDESK_SOCKET") or platforms.backend().control.default_address()


HELPER_UID = 0
"""The only user a helper runs as (root; LocalSystem on Windows)."""


class HelperClient:
    """One connection to the helper, opened on first use. Not thread-safe; use one per thread."""

    def __init__(self, socket_path: str | os.PathLike[str] | None = None, timeout: float = 60.0) -> None:
        self.socket_path = os.fspath(socket_path) if socket_path is not None else default_socket_path()
        self.timeout = timeout
        self._sock: Connection | None = None
        self._buf = b""
        self._ids = itertools.count(1)

    # --- verbs ---------------------------------------------------------------------------------

    def up(
        self, name: str, config_text: str, full_tunnel: bool | None = None, kill_switch: bool | None = None
    ) -> dict[str, Any]:
        """Bring tunnel ``name`` up from a complete config (with secrets); returns its description."""
        result: dict[str, Any] = self.request(
            "up", name=name, config=config_text, full_tunnel=full_tunnel, kill_switch=kill_switch
        )
        return result

    def update(self, name: str, config_text: str) -> dict[str, Any]:
        """Apply an edited config (with secrets) to the running tunnel ``name`` without restarting it.

        Returns ``{"applied": "live", "peers": {...}, "routes": {...}, "tunnel": {...}}``. Raises
        `RestartRequired` (with ``keys``) when the change needs a reconnect; nothing is changed then.
        """
        result: dict[str, Any] = self.request("update", name=name, config=config_text)
        return result

    def down(self, name: str) -> dict[str, Any]:
        result: dict[str, Any] = self.request("down", name=name)
        return result

    def status(self, name: str | None = None) -> list[TunnelSnapshot]:
        """The tunnels the helper runs for this user (never any private or preshared key); ``to_wire``
        of each is the ``tunnels`` list of ``wgdeskctl show --json``. A reply of the wrong shape is
        `HelperError` ``malformed``, naming the field."""
        args = {"name": name} if name is not None else {}
        result = self.request("status", **args)
        tunnels = result.get("tunnels") if isinstance(result, dict) else None
        if not isinstance(tunnels, list):
            raise HelperError("the helper sent a malformed status: no tunnels list", "malformed")
        return [_typed(TunnelSnapshot.from_wire, t) for t in tunnels]

    def lockdown(self) -> dict[str, Any]:
        """Lockdown as the helper has it: ``{"enabled": bool, "policy": "user"|"always"|"never",
        "paused_until": Unix time | None, "pause_max": seconds}`` (the ``lockdown`` object of
        ``version``). A helper that predates lockdown raises
        `HelperError` with code ``unsupported``."""
        result = self.request("version")
        state = result.get("lockdown") if isinstance(result, dict) else None
        if not isinstance(state, dict):
            raise HelperError("this helper does not support lockdown; update wgdesk", "unsupported")
        return state

    def set_lockdown(self, enabled: bool) -> dict[str, Any]:
        """Turn lockdown on or off (persistent, helper-wide): while on, the kill switch blocks
        everything but tunnels even with no tunnel up. Returns the new ``{"enabled", "policy"}``;
        `HelperPermissionDenied` when the administrator's policy forces it or the caller may only
        watch."""
        result: dict[str, Any] = self.request("set_lockdown", enabled=enabled)
        return result

    def pause_lockdown(self, seconds: int) -> dict[str, Any]:
        """Pause lockdown for ``seconds`` (captive portals: a Wi-Fi login page): with no tunnel up,
        everything flows until the pause ends; tunnels' own kill switches still apply. Returns the
        new lockdown state; `HelperPermissionDenied` when the administrator forbids pausing (or the
        caller may only watch), `HelperError` ``invalid`` for seconds out of range and ``conflict``
        when lockdown is off."""
        result: dict[str, Any] = self.request("pause_lockdown", seconds=seconds)
        return result

    def resume_lockdown(self) -> dict[str, Any]:
        """End a lockdown pause now; returns the new lockdown state."""
        result: dict[str, Any] = self.request("resume_lockdown")
        return result

    def logs(self, name: str | None, since: float | None = None) -> list[dict[str, Any]]:
        """Log records ``{"time", "level", "source": "helper"|"engine", "message"}``, oldest first."""
        args: dict[str, Any] = {"since": since}
        if name is not None:
            args["name"] = name
        records: list[dict[str, Any]] = self.request("logs", **args)["records"]
        return records

    def diagnose(self, name: str) -> Diagnosis:
        """The tunnel, the helper's findings and recent log (see `wgdesk.snapshots.Diagnosis`)."""
        return _typed(Diagnosis.from_wire, self.request("diagnose", name=name))

    def probe_mtu(self, name: str, target: str | None = None, apply: bool = False) -> dict[str, Any]:
        """Probe the path MTU through the running tunnel ``name`` with don't-fragment pings.

        ``target`` is an IP address inside the tunnel that answers pings (default: the config's
        first DNS server inside AllowedIPs, else its first /32 or /128). Returns ``{"target",
        "mtu_before", "largest_working", "recommended_mtu", "probes": [[size, ok]…], "seconds",
        "applied", "tunnel"}``; with ``apply`` the helper lowers the interface MTU to
        ``recommended_mtu`` when that is smaller. Takes up to about 15 s.
        """
        args: dict[str, Any] = {"name": name, "apply": apply}
        if target is not None:
            args["target"] = target
        result: dict[str, Any] = self.request("probe_mtu", **args)
        return result

    def split_exclude(self) -> dict[str, Any]:
        """Move *this* process into the helper's bypass cgroup: sockets it (and the programs it execs
        or starts) opens from now on bypass a full tunnel. The helper takes the process from the
        connection's kernel credentials. Returns ``{"pid", "uid", "command", "cgroup", "active",
        "tunnel"}`` (``active``: a full tunnel is up and bypassed now). Refused (`HelperError`,
        code ``denied`` or ``unsupported``) when the administrator forbids it or the system cannot."""
        result: dict[str, Any] = self.request("split_exclude")
        return result

    def split_include(self) -> dict[str, Any]:
        """Move *this* process into the helper's include cgroup: sockets it opens from now on go only
        through the tunnel up with full tunnel off whose peers allow 0.0.0.0/0 or ::/0. Returns
        ``{"pid", "uid", "command", "mode", "cgroup", "active", "tunnel"}`` (``active``: such a
        tunnel serves included apps now). Refused like `split_exclude`."""
        result: dict[str, Any] = self.request("split_include")
        return result

    def split_list(self) -> dict[str, Any]:
        """Processes of both split-tunnel cgroups (a non-root caller sees only its own):
        ``{"processes": [{"pid", "uid", "command", "mode"}…], "available", "reason", "cgroup",
        "active", "tunnel", "include": {"cgroup", "active", "tunnel"}}`` — ``mode`` is "exclude" or
        "include"; the top-level ``cgroup``/``active``/``tunnel`` describe exclude mode."""
        result: dict[str, Any] = self.request("split_list")
        return result

    def version(self) -> dict[str, Any]:
        result: dict[str, Any] = self.request("version")
        return result

    def subscribe(self) -> Iterator[dict[str, Any]]:
        """Yield events (``{"event": "state", "tunnel": ..., "state": ..., ...}``) until closed.

        Uses its own connection; the iterator blocks without a timeout between events.
        """
        sub = HelperClient(self.socket_path, self.timeout)
        try:
            sub.request("subscribe")
            assert sub._sock is not None
            sub._sock.settimeout(None)
            while True:
                msg = sub._read_message()
                msg.pop("v", None)
                yield msg
        finally:
            sub.close()

    # --- transport -----------------------------------------------------------------------------

    def request(self, verb: str, **args: Any) -> Any:
        """Send one request and return its ``result``; raises `HelperError` subclasses."""
        sock = self._connect()
        rid = next(self._ids)
        line = (
            json.dumps(
                {"v": PROTOCOL_VERSION, "id": rid, "verb": verb, "args": args}, separators=(",", ":")
            ).encode()
            + b"\n"
        )
        try:
            sock.sendall(line)
        except OSError as e:
            # A helper that turns the caller away (denied, busy) answers and hangs up at once, possibly
            # before the request is written: its answer is still queued here and says why.
            try:
                return self._answer(rid)
            except HelperUnavailable:
                self.close()
                raise HelperUnavailable(
                    f"the helper closed the connection ({e.strerror}); is it still running?"
                ) from e
        return self._answer(rid)

    def _answer(self, rid: int) -> Any:
        """Read until the reply to request `rid` (or an error without an id) and return its result."""
        while True:
            msg = self._read_message()
            if "event" in msg:
                continue
            if msg.get("id") not in (rid, None):
                continue
            if msg.get("ok"):
                return msg.get("result")
            err = msg.get("error") or {}
            code = str(err.get("code", "failed"))
            text = str(err.get("message", "the helper refused the request"))
            if code == "denied":
                self.close()
                raise HelperPermissionDenied(text, code)
            if code == "restart_required":
                keys = err.get("keys")
                raise RestartRequired(text, [str(k) for k in keys] if isinstance(keys, list) else [])
            raise HelperError(text, code)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
            self._buf = b""

    def __enter__(self) -> HelperClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _connect(self) -> Connection:
        if self._sock is not None:
            return self._sock
        control = platforms.backend().control
        try:
            sock = control.connect(self.socket_path, self.timeout)
        except (FileNotFoundError, ConnectionRefusedError) as e:
            start = (
                "`sc.exe start wgdesk-helper` in an administrator's prompt"
                if self.socket_path.startswith("\\\\.\\pipe\\")
                else "`sudo systemctl start wgdesk-helper` (or `sudo wgdesk-helper` when developing)"
            )
            raise HelperUnavailable(
                f"the wgdesk helper is not running (no answer on {self.socket_path}); start it with {start}",
                "unavailable",
            ) from e
        except PermissionError as e:
            raise HelperPermissionDenied(
                f"permission denied on {self.socket_path}: only root and members of group 'wgdesk' may "
                "control tunnels (sudo usermod -aG wgdesk $USER, then log in again)",
                "denied",
            ) from e
        except OSError as e:
            if e.errno == errno.ENOTSOCK:
                raise HelperUnavailable(f"{self.socket_path} is not a socket", "unavailable") from e
            raise HelperUnavailable(
                f"cannot reach the helper at {self.socket_path}: {e.strerror}", "unavailable"
            ) from e
        try:
            uid = control.server_uid(sock)
        except OSError:
            uid = None
        if uid != HELPER_UID:
            sock.close()
            who = f"uid {uid}" if uid is not None else "a process this system cannot name"
            raise HelperUnavailable(
                f"{self.socket_path} is served by {who}, not by root: the wgdesk helper always runs as "
                "root, so this is not it (check --socket and $WGDESK_SOCKET); nothing was sent",
                "untrusted",
            )
        self._sock = sock
        return sock

    def _read_message(self) -> dict[str, Any]:
        assert self._sock is not None
        while b"\n" not in self._buf:
            try:
                chunk = self._sock.recv(65536)
            except TimeoutError as e:
                self.close()
                raise HelperError("the helper did not answer in time", "timeout") from e
            except OSError as e:
                self.close()
                raise HelperUnavailable(
                    f"connection to the helper failed: {e.strerror}", "unavailable"
                ) from e
            if not chunk:
                self.close()
                raise HelperUnavailable("the helper closed the connection", "unavailable")
            self._buf += chunk
            if len(self._buf) > MAX_REPLY_BYTES:
                self.close()
                raise HelperError("reply from the helper is too large", "too_large")
        line, _, self._buf = self._buf.partition(b"\n")
        try:
            msg = json.loads(line)
        except ValueError as e:
            self.close()
            raise HelperError("the helper sent a malformed reply", "malformed") from e
        if not isinstance(msg, dict):
            raise HelperError("the helper sent a malformed reply", "malformed")
        return msg
