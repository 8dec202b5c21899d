"""The control socket: JSON lines, one thread per connection, on the OS backend's control endpoint
(a UNIX stream socket; a named pipe on Windows).

Every connection is authorised from its kernel credentials (``SO_PEERCRED`` and the peer's groups)
*before* a single byte is read: root, a member of the configured group (``wgdesk``), or of the
optional ``monitor_group``. Then every request is authorised by its verb: monitor members may only
watch (`WATCH_VERBS`); what a caller may change and see of tunnels — their own; root and the
``admin_group`` see all — the `TunnelManager` decides under its lock, from the connection's `Caller`.
Requests are bounded in size and in time; a client that is too slow to send or to read is dropped,
and the number of simultaneous connections is capped, so no client can wedge the helper. Refusals
are logged through a `Throttle`: with a monitor group the socket is open to every local user.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from contextlib import suppress
from pathlib import Path
from queue import Empty
from typing import Any

from wgdesk import __version__
from wgdesk.helper import protocol
from wgdesk.helper.caller import Caller
from wgdesk.helper.errors import TunnelError
from wgdesk.helper.events import Events
from wgdesk.helper.logbook import LogBook, Throttle
from wgdesk.helper.settings import Settings
from wgdesk.helper.tunnels import TunnelManager
from wgdesk.platforms import backend
from wgdesk.platforms.interface import Connection, EndpointInUse, Listener

Verb = Callable[[Mapping[str, Any], Connection, Caller], Any]
"""What answers one verb: its validated arguments, the connection and its caller in; the reply out."""


def default_socket() -> Path:
    """Where the helper listens unless told otherwise (the OS backend's control endpoint)."""
    return Path(backend().control.default_address())


MAX_CONNECTIONS = 32
IDLE_TIMEOUT = 120.0
"""Seconds a connection may sit between requests."""
REQUEST_TIMEOUT = 10.0
"""Seconds from the first byte of a request to its newline."""
PER_USER_CONNECTIONS = 8
"""Simultaneous connections one non-root user may hold (so one group member cannot take them all)."""
SEND_TIMEOUT = 5.0
"""Seconds a client may take to read what we send before it is dropped."""
WATCH_VERBS = frozenset({"version", "status", "logs", "diagnose", "subscribe", "split_list"})
"""Verbs that only read: all a member of `monitor_group` may use."""

ROOT, CONTROL, MONITOR = "root", "control", "monitor"
"""Roles of a connection, from its credentials."""


class HelperAlreadyRunning(Exception):
    """Another helper answers on the socket path."""


class ControlServer:
    """Accepts connections, authorises them and dispatches verbs to the `TunnelManager` and the
    controllers it delegates to (`reports`, `lockdown`, `split_tunnel`)."""

    def __init__(
        self, path: Path, settings: Settings, manager: TunnelManager, logbook: LogBook, events: Events
    ) -> None:
        self.path = path
        self.settings = settings
        self.manager = manager
        self.verbs = self._verbs()
        self.log = logbook
        self.events = events
        self._listener: Listener | None = None
        self.endpoint = backend().control
        self._stop = threading.Event()
        self._active = threading.BoundedSemaphore(MAX_CONNECTIONS)
        self._per_user: dict[int, int] = {}
        self._per_user_lock = threading.Lock()
        self.group_gid = backend().identity.group_id(settings.group)
        if self.group_gid is None:
            self.log.warning(None, f"group {settings.group!r} does not exist: only root may use the helper")
        self.monitor_gid = self._gid(settings.monitor_group, "monitor group")
        self.admin_gid = self._gid(settings.admin_group, "admin group")
        self._refusals = Throttle("refusals")
        """Bounds what refused connections and requests write to the log."""

    def _gid(self, group: str, what: str) -> int | None:
        if not group:
            return None
        gid = backend().identity.group_id(group)
        if gid is None:
            self.log.warning(None, f"{what} {group!r} does not exist")
        return gid

    # --- socket --------------------------------------------------------------------------------

    def bind(self) -> None:
        """Listen: 0660 root:group (0666 with a monitor group: the peer's credentials decide), or 0600
        without the group, in a place only root may write. Raises `HelperAlreadyRunning`,
        `PermissionError`."""
        try:
            self._listener = self.endpoint.bind(
                str(self.path), self.group_gid, open_to_all=self.monitor_gid is not None
            )
        except EndpointInUse as e:
            raise HelperAlreadyRunning(str(e)) from e

    def serve_forever(self) -> None:
        assert self._listener is not None
        while not self._stop.is_set():
            try:
                conn = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                if self._stop.is_set():
                    break
                raise
            if not self._active.acquire(blocking=False):
                self._refuse(conn, "busy", "too many connections to the helper; try again")
                continue
            threading.Thread(target=self._serve, args=(conn,), daemon=True, name="control").start()

    def stop(self) -> None:
        self._stop.set()
        if self._listener is not None:
            self._listener.close()
            self._listener = None

    # --- one connection --------------------------------------------------------------------------

    def _refuse(self, conn: Connection, code: str, message: str) -> None:
        with suppress(OSError):
            conn.settimeout(1.0)
            conn.sendall(protocol.error(None, code, message))
        conn.close()

    def authorised(self, conn: Connection) -> tuple[str | None, Caller]:
        """The connection's role (`ROOT`, `CONTROL`, `MONITOR`, or None: refused) and `Caller`."""
        peer = self.endpoint.peer(conn)
        caller = Caller(peer.uid, sees_all=peer.uid == 0 or peer.member_of(self.admin_gid))
        if peer.uid == 0:
            return ROOT, caller
        for gid, role in ((self.group_gid, CONTROL), (self.monitor_gid, MONITOR)):
            if peer.member_of(gid):
                return role, caller
        return None, caller

    def _log_refusal(self, uid: int, tunnel: str | None, message: str) -> None:
        log_it, note = self._refusals.check(uid)
        if log_it:
            self.log.warning(tunnel, message)
        if note:
            self.log.warning(None, note)

    def _serve(self, conn: Connection) -> None:
        try:
            role, caller = self.authorised(conn)
            uid = caller.uid
            if role is None:
                self._log_refusal(
                    uid,
                    None,
                    f"refused a connection from uid {uid}: not root and not in group {self.settings.group}",
                )
                self._refuse(
                    conn,
                    "denied",
                    f"permission denied: only root and members of group "
                    f"{self.settings.group!r} may control tunnels "
                    f"(sudo usermod -aG {self.settings.group} $USER, then log in again)",
                )
                return
            if uid != 0:
                with self._per_user_lock:
                    if self._per_user.get(uid, 0) >= PER_USER_CONNECTIONS:
                        self._refuse(
                            conn, "busy", f"too many connections from uid {uid}; close some and retry"
                        )
                        return
                    self._per_user[uid] = self._per_user.get(uid, 0) + 1
            try:
                self._requests(conn, caller, role)
            finally:
                if uid != 0:
                    with self._per_user_lock:
                        self._per_user[uid] -= 1
        except Exception as e:  # a bug must not kill the helper
            self.log.error(None, f"control connection failed: {e!r}")
        finally:
            with suppress(OSError):
                conn.close()
            self._active.release()

    def _send(self, conn: Connection, data: bytes) -> None:
        conn.settimeout(SEND_TIMEOUT)
        conn.sendall(data)

    def _requests(self, conn: Connection, caller: Caller, role: str) -> None:
        buf = bytearray()
        idle_since = time.monotonic()
        started: float | None = None
        while not self._stop.is_set():
            nl = buf.find(b"\n")
            if nl >= 0:
                line = bytes(buf[:nl])
                del buf[: nl + 1]
                started = time.monotonic() if buf else None
                if not line.strip():
                    continue
                if not self._dispatch(conn, line, caller, role):
                    return
                idle_since = time.monotonic()
                continue
            if len(buf) > protocol.MAX_REQUEST_BYTES:
                self._send(
                    conn,
                    protocol.error(
                        None, "too_large", f"request longer than {protocol.MAX_REQUEST_BYTES} bytes"
                    ),
                )
                return
            now = time.monotonic()
            if started is not None and now - started > REQUEST_TIMEOUT:
                self._send(conn, protocol.error(None, "timeout", "request not completed in time"))
                return
            if started is None and now - idle_since > IDLE_TIMEOUT:
                return
            conn.settimeout(0.5)
            try:
                chunk = conn.recv(65536)
            except TimeoutError:
                continue
            if not chunk:
                return
            if started is None:
                started = time.monotonic()
            buf += chunk

    def _dispatch(self, conn: Connection, line: bytes, caller: Caller, role: str) -> bool:
        """Handle one request; False ends the connection."""
        try:
            req = protocol.decode_request(line)
        except protocol.ProtocolError as e:
            self._send(conn, protocol.error(e.request_id, e.code, e.message))
            return e.code not in ("malformed", "too_large")
        refusal = self._refusal(req, role)
        if refusal is not None:
            self._log_refusal(
                caller.uid, req.args.get("name"), f"refused {req.verb} from uid {caller.uid}: {refusal}"
            )
            self._send(conn, protocol.error(req.id, "denied", refusal))
            return True
        if req.verb == "subscribe":
            self._send(conn, protocol.response(req.id, {"subscribed": True}))
            self._stream(conn, caller)
            return False
        try:
            result = self._call(req, conn, caller)
        except TunnelError as e:
            if e.code == "denied":
                self._log_refusal(
                    caller.uid, req.args.get("name"), f"refused {req.verb} from uid {caller.uid}: {e.message}"
                )
            self._send(conn, protocol.error(req.id, e.code, e.message, **e.details))
            return True
        except Exception as e:
            self.log.error(None, f"{req.verb} failed: {e!r}")
            self._send(conn, protocol.error(req.id, "internal", f"{req.verb} failed: {e}"))
            return True
        self._send(conn, protocol.response(req.id, result))
        return True

    def _refusal(self, req: protocol.Request, role: str) -> str | None:
        """Why this role may not use this verb, or None (whose tunnels a caller may change the
        `TunnelManager` decides, under its lock)."""
        if role != MONITOR or req.verb in WATCH_VERBS:
            return None
        return (
            f"members of group {self.settings.monitor_group!r} may only watch tunnels (status, logs); "
            f"{req.verb} needs group {self.settings.group!r}"
        )

    def _verbs(self) -> dict[str, Verb]:
        """Each verb of the protocol and what answers it, spelt out: a verb the manager happens to
        have a method of the same name for is not reachable unless it is listed here
        (`tests/helper/test_units.py` checks the table against `protocol.VERBS`). ``subscribe`` is
        not here: it turns the connection into an event stream (`_stream`)."""
        m = self.manager
        return {
            "version": lambda a, conn, caller: {
                "version": __version__,
                "protocol": protocol.VERSION,
                "lockdown": m.lockdown.lockdown_state(),
            },
            "up": lambda a, conn, caller: m.up(
                a["name"], a["config"], a["full_tunnel"], a["kill_switch"], caller
            ),
            "update": lambda a, conn, caller: m.update(a["name"], a["config"], caller),
            "down": lambda a, conn, caller: m.down(a["name"], caller),
            "status": lambda a, conn, caller: {"tunnels": m.reports.status(a["name"], caller)},
            "logs": lambda a, conn, caller: {"records": m.reports.logs(a["name"], a["since"], caller)},
            "diagnose": lambda a, conn, caller: m.reports.diagnose(a["name"], caller),
            "probe_mtu": lambda a, conn, caller: m.probe_mtu(a["name"], a["target"], a["apply"], caller),
            "split_exclude": lambda a, conn, caller: m.split_tunnel.split_exclude(conn, caller.uid),
            "split_include": lambda a, conn, caller: m.split_tunnel.split_include(conn, caller.uid),
            "split_list": lambda a, conn, caller: m.split_tunnel.split_list(
                None if caller.is_root else caller.uid
            ),
            "set_lockdown": self._set_lockdown,
            "pause_lockdown": self._pause_lockdown,
            "resume_lockdown": self._resume_lockdown,
        }

    def _set_lockdown(self, a: Mapping[str, Any], conn: Connection, caller: Caller) -> Any:
        self.log.info(None, f"uid {caller.uid} turns lockdown {'on' if a['enabled'] else 'off'}", caller.uid)
        return self.manager.lockdown.set_lockdown(a["enabled"])

    def _pause_lockdown(self, a: Mapping[str, Any], conn: Connection, caller: Caller) -> Any:
        self.log.info(None, f"uid {caller.uid} asks to pause lockdown for {a['seconds']} s", caller.uid)
        return self.manager.lockdown.pause_lockdown(a["seconds"])

    def _resume_lockdown(self, a: Mapping[str, Any], conn: Connection, caller: Caller) -> Any:
        self.log.info(None, f"uid {caller.uid} resumes lockdown", caller.uid)
        return self.manager.lockdown.resume_lockdown()

    def _call(self, req: protocol.Request, conn: Connection, caller: Caller) -> Any:
        verb = self.verbs.get(req.verb)
        if verb is None:
            raise TunnelError("unknown_verb", req.verb)
        return verb(req.args, conn, caller)

    def _stream(self, conn: Connection, caller: Caller) -> None:
        """Events ``caller`` may see: of its own tunnels (root and the admin group: all), and
        helper-wide ones (lockdown)."""
        q = self.events.subscribe()
        self.log.add("debug", "helper", None, "event subscriber connected", caller.uid)
        try:
            for t in self.manager.reports.status(None, caller):
                self._send(
                    conn, protocol.event("state", tunnel=t["name"], state=t["state"], message=t["message"])
                )
            while not self._stop.is_set():
                try:
                    ev = q.get(timeout=1.0)
                except Empty:
                    conn.settimeout(0)
                    try:
                        if conn.recv(4096) == b"":
                            return
                    except (BlockingIOError, TimeoutError):
                        pass
                    continue
                if ev is None:  # fell behind
                    self._send(conn, protocol.event("error", message="event stream overflowed; resubscribe"))
                    return
                owner, event = ev
                if owner is not None and not caller.sees(owner):
                    continue
                fields = dict(event)
                kind = fields.pop("event")
                self._send(conn, protocol.event(kind, **fields))
        finally:
            self.events.unsubscribe(q)
