"""Control-socket requests: bytes a local client writes to the helper, through the real `ControlServer`.

The input's first byte picks who is connected (root; group member uid 1000; uid 4242; a monitor-group
member); the rest is written to a socket pair and the helper's own connection loop
(`ControlServer._requests`: framing, `protocol.decode_request`, authorisation by verb, the dispatch)
reads it until end of stream. The `TunnelManager` is replaced by a recorder that stops where the helper
would act; every argument it receives is checked against the protocol's rules, so a value the decoder
lets through unvalidated is a finding. Its answer is chosen by the input too (success or a
`TunnelError`). Whose tunnels a caller may change or see the manager decides (issue 13: under its lock,
from the owner recorded before a bring-up starts); what the server must get right is the identity it
hands over, so the recorder checks that every call carries the connection's own `Caller`.

Invariants:
* the helper answers every request with exactly one JSON line (``v`` 1, an ``id`` that is null or the
  request's, ``ok``; a known error ``code``), nothing is logged as an error and nothing reaches
  ``internal``;
* the manager only sees verbs of the allow-list with validated arguments (names match the interface
  name rule, configs have no control characters but newlines and tabs and are within the size bound,
  flags are booleans or null, targets are IP literals);
* a monitor member never reaches a verb that changes anything, and every call that acts for a caller
  carries the connection's uid, with the right to see everything only for root;
* the connection ends after a ``malformed`` or ``too_large`` error or a subscription, never otherwise
  before the input does.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import socket
from collections.abc import Callable
from pathlib import Path
from queue import Queue
from typing import Any

from tests.fuzz.targets import check
from wgdesk.config import is_interface_name
from wgdesk.helper import protocol
from wgdesk.helper.caller import Caller
from wgdesk.helper.errors import TunnelError
from wgdesk.helper.events import Events
from wgdesk.helper.logbook import LogBook
from wgdesk.helper.server import CONTROL, MONITOR, ROOT, WATCH_VERBS, ControlServer
from wgdesk.helper.settings import Settings

MAX_LEN = 16384
OWNER = 4242
CALLERS = (
    (ROOT, Caller(0, sees_all=True)),
    (CONTROL, Caller(1000)),
    (CONTROL, Caller(OWNER)),
    (MONITOR, Caller(2000)),
)
ERROR_CODES = frozenset(
    {"malformed", "too_large", "unsupported_version", "invalid", "unknown_verb", "denied", "refused"}
)
ENDING_CODES = frozenset({"malformed", "too_large"})
_CONTROL_CHARS = {chr(c) for c in (*range(0x20), *range(0x7F, 0xA0))} - {"\n", "\r", "\t"}


class RecordingManager:
    """Stands where `TunnelManager` acts: checks what it is given, records the call, answers or refuses."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.fail = False
        self.caller = Caller(0, sees_all=True)
        # the verb table calls the manager's controllers too; the recorder stands in for them all
        self.reports = self.lockdown = self.split_tunnel = self

    def _call(self, verb: str, caller: Caller | None = None, **args: Any) -> dict[str, Any]:
        self.calls.append((verb, args))
        if caller is not None:
            check(caller == self.caller, f"{verb} acts for {caller}, the connection is {self.caller}")
        for key, value in args.items():
            if key == "name" and value is not None:
                check(
                    isinstance(value, str) and is_interface_name(value), f"{verb}: unchecked name {value!r}"
                )
            elif key == "text":
                check(isinstance(value, str), f"{verb}: config is {type(value).__name__}")
                check(len(value) <= protocol.MAX_CONFIG_CHARS, f"{verb}: config of {len(value)} characters")
                check(not (_CONTROL_CHARS & set(value)), f"{verb}: config with a control character")
            elif key in ("full_tunnel", "kill_switch", "apply"):
                check(value is None or isinstance(value, bool), f"{verb}: {key}={value!r}")
            elif key == "enabled":
                check(isinstance(value, bool), f"{verb}: enabled={value!r}")
            elif key == "seconds":
                check(type(value) is int and value >= 1, f"{verb}: seconds={value!r}")
            elif key == "target" and value is not None:
                check(str(ipaddress.ip_address(value)) == value, f"{verb}: target={value!r}")
            elif key == "since" and value is not None:
                check(type(value) is float, f"{verb}: since={value!r}")
        if self.fail:
            raise TunnelError("refused", f"{verb} refused by the fuzz harness")
        return {"done": verb}

    def up(
        self, name: str, text: str, full_tunnel: bool | None, kill_switch: bool | None, caller: Caller
    ) -> dict[str, Any]:
        return self._call(
            "up", caller, name=name, text=text, full_tunnel=full_tunnel, kill_switch=kill_switch
        )

    def update(self, name: str, text: str, caller: Caller) -> dict[str, Any]:
        return self._call("update", caller, name=name, text=text)

    def down(self, name: str, caller: Caller) -> dict[str, Any]:
        return self._call("down", caller, name=name)

    def status(self, name: str | None, caller: Caller) -> list[dict[str, Any]]:
        # never refuses: the real one only reports state (a subscription calls it outside any request)
        fail, self.fail = self.fail, False
        try:
            self._call("status", caller, name=name)
        finally:
            self.fail = fail
        return [{"name": "owned", "state": "up", "message": None}]

    def logs(self, name: str | None, since: float | None, caller: Caller) -> list[dict[str, Any]]:
        self._call("logs", caller, name=name, since=since)
        return []

    def diagnose(self, name: str, caller: Caller) -> dict[str, Any]:
        return self._call("diagnose", caller, name=name)

    def probe_mtu(self, name: str, target: str | None, apply: bool | None, caller: Caller) -> dict[str, Any]:
        return self._call("probe_mtu", caller, name=name, target=target, apply=apply)

    def split_exclude(self, conn: socket.socket, uid: int) -> dict[str, Any]:
        check(uid == self.caller.uid, f"split_exclude for uid {uid}, the connection is {self.caller}")
        return self._call("split_exclude")

    def split_include(self, conn: socket.socket, uid: int) -> dict[str, Any]:
        check(uid == self.caller.uid, f"split_include for uid {uid}, the connection is {self.caller}")
        return self._call("split_include")

    def split_list(self, uid: int | None) -> dict[str, Any]:
        check(uid == (None if self.caller.is_root else self.caller.uid), f"split_list for uid {uid}")
        return self._call("split_list")

    def lockdown_state(self) -> dict[str, Any]:
        return {"enabled": False}

    def set_lockdown(self, enabled: bool) -> dict[str, Any]:
        return self._call("set_lockdown", enabled=enabled)

    def pause_lockdown(self, seconds: int) -> dict[str, Any]:
        return self._call("pause_lockdown", seconds=seconds)

    def resume_lockdown(self) -> dict[str, Any]:
        return self._call("resume_lockdown")


class OverflowingEvents(Events):
    """A subscription that has one event queued and then falls behind, so `_stream` ends at once."""

    def subscribe(self) -> Queue[tuple[int | None, dict[str, Any]] | None]:
        q = super().subscribe()
        q.put((OWNER, {"event": "state", "tunnel": "owned", "state": "up", "message": None}))
        q.put(None)
        return q


def _lines(data: bytes) -> list[bytes]:
    """The request lines the helper sees: split at newlines, blank ones skipped, the unterminated rest
    dropped (the stream ends before its newline)."""
    lines = data.split(b"\n")[:-1]
    return [line for line in lines if line.strip()]


def _request_id(line: bytes) -> object:
    try:
        msg = json.loads(line)
    except (ValueError, RecursionError):
        return None
    return msg.get("id") if isinstance(msg, dict) else None


def one_input(server: ControlServer, manager: RecordingManager, data: bytes) -> None:
    if not data:
        return
    role, caller = CALLERS[data[0] % len(CALLERS)]
    manager.fail = bool(data[0] & 0x80)
    manager.calls.clear()
    manager.caller = caller
    server.log = LogBook()
    ours, theirs = socket.socketpair()
    try:
        ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
        theirs.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
        ours.sendall(data[1:])
        ours.shutdown(socket.SHUT_WR)
        server._requests(theirs, caller, role)
        theirs.close()
        replies = b""
        while chunk := ours.recv(1 << 16):
            replies += chunk
    finally:
        ours.close()
        theirs.close()
    check(replies == b"" or replies.endswith(b"\n"), "a reply is not terminated by a newline")
    requests = _lines(data[1:])
    answers = []
    subscribed = False
    for line in replies.splitlines():
        answer = json.loads(line)
        check(isinstance(answer, dict) and answer.get("v") == 1, f"answer {answer!r}")
        if "event" in answer:
            check(subscribed, "an event before a subscription")
        else:
            answers.append(answer)
            subscribed = answer.get("result") == {"subscribed": True}
    ended = False
    for i, answer in enumerate(answers):
        check(not ended, f"an answer after the connection should have ended: {answer!r}")
        check(i < len(requests), f"an answer without a request: {answer!r}")
        rid = answer.get("id")
        check(rid is None or rid == _request_id(requests[i]), f"answer id {rid!r} for {requests[i][:80]!r}")
        if answer.get("ok") is True:
            ended = answer.get("result") == {"subscribed": True}
            continue
        check(answer.get("ok") is False, f"answer without ok: {answer!r}")
        code = answer["error"]["code"]
        check(code in ERROR_CODES, f"error code {code!r}: {answer['error'].get('message')!r}")
        ended = code in ENDING_CODES
    if not ended:
        check(len(answers) == len(requests), f"{len(answers)} answers to {len(requests)} requests")
    for verb, _args in manager.calls:
        if role == MONITOR:
            check(verb in WATCH_VERBS, f"monitor member reached {verb}")
    errors = [r for r in server.log.records(None, None) if r["level"] == "error"]
    check(not errors, f"the helper logged an error: {errors[:1]}")


def setup() -> Callable[[bytes], None]:
    logging.disable(logging.CRITICAL)
    manager = RecordingManager()
    server = ControlServer(
        Path("/nonexistent/helper.sock"), Settings(), manager, LogBook(), OverflowingEvents()
    )  # type: ignore[arg-type]
    return lambda data: one_input(server, manager, data)
