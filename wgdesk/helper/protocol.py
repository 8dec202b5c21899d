"""The control-socket wire format (documented in docs/control-protocol.md).

JSON lines: one UTF-8 JSON object per line. Requests ``{"v": 1, "id": N, "verb": ..., "args": {...}}``;
responses ``{"v": 1, "id": N, "ok": true, "result": ...}`` or ``{"v": 1, "id": N, "ok": false,
"error": {"code": ..., "message": ...}}``; events ``{"v": 1, "event": ..., ...}``.

Every field is checked against an allow-list of verbs and typed arguments; strings with control
characters are refused, so nothing a client sends can smuggle a newline into a config or a log.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
from dataclasses import dataclass
from ipaddress import ip_address
from typing import Any

from wgdesk.config import is_interface_name

VERSION = 1
MAX_REQUEST_BYTES = 512 * 1024
"""Longest request line accepted (a config with thousands of AllowedIPs fits)."""
MAX_CONFIG_CHARS = 400 * 1024

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_CONTROL_EXCEPT_LINES = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


class ProtocolError(Exception):
    """A request the helper refuses; ``code`` is the wire error code."""

    def __init__(self, code: str, message: str, request_id: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.request_id = request_id


@dataclass(frozen=True)
class Request:
    id: int
    verb: str
    args: dict[str, Any]


def _name(value: object, field: str = "name") -> str:
    if not isinstance(value, str) or not is_interface_name(value):
        raise ProtocolError(
            "invalid",
            f"{field} must match ^[a-zA-Z0-9_=+.-]{{1,15}}$, must not start with - and not be . or ..",
        )
    return value


def _optional_bool(value: object, field: str) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    raise ProtocolError("invalid", f"{field} must be true, false or null")


def _config_text(value: object) -> str:
    if not isinstance(value, str):
        raise ProtocolError("invalid", "config must be a string")
    if len(value) > MAX_CONFIG_CHARS:
        raise ProtocolError("too_large", f"config is longer than {MAX_CONFIG_CHARS} characters")
    if _CONTROL_EXCEPT_LINES.search(value):
        raise ProtocolError("invalid", "config contains a control character")
    return value


def _target(value: object) -> str | None:
    """An IP address literal (never a name: the helper must not resolve what a client sends)."""
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > 45 or _CONTROL.search(value):
        raise ProtocolError("invalid", "target must be an IP address or null")
    try:
        return str(ip_address(value))
    except ValueError:
        raise ProtocolError("invalid", f"target must be an IP address, not {value!r}") from None


def _bool(value: object, field: str) -> bool:
    if isinstance(value, bool):
        return value
    raise ProtocolError("invalid", f"{field} must be true or false")


def _since(value: object) -> float | None:
    if value is None:
        return None
    if not isinstance(value, bool) and isinstance(value, int | float):
        # an integer too large for a float, NaN and Infinity (which Python's JSON reader accepts)
        # are not times (found by fuzzing: the first raised OverflowError out of the decoder)
        with contextlib.suppress(OverflowError):
            since = float(value)
            if math.isfinite(since):
                return since
    raise ProtocolError("invalid", "since must be a number (Unix seconds) or null")


def _seconds(value: object) -> int:
    """A whole number of seconds, at least 1 (the helper's `lockdown_pause_max` bounds it above)."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 2**31:
        raise ProtocolError("invalid", "seconds must be a whole number of seconds, at least 1")
    return value


# verb -> {arg: (required, validator)}
_VERBS: dict[str, dict[str, tuple[bool, Any]]] = {
    "version": {},
    "up": {
        "name": (True, _name),
        "config": (True, _config_text),
        "full_tunnel": (False, lambda v: _optional_bool(v, "full_tunnel")),
        "kill_switch": (False, lambda v: _optional_bool(v, "kill_switch")),
    },
    "update": {"name": (True, _name), "config": (True, _config_text)},
    "down": {"name": (True, _name)},
    "status": {"name": (False, lambda v: None if v is None else _name(v))},
    "logs": {"name": (False, lambda v: None if v is None else _name(v)), "since": (False, _since)},
    "diagnose": {"name": (True, _name)},
    "probe_mtu": {
        "name": (True, _name),
        "target": (False, _target),
        "apply": (False, lambda v: _optional_bool(v, "apply")),
    },
    "subscribe": {},
    # no arguments: the process moved is the caller, as the kernel names it (never a client's pid)
    "split_exclude": {},
    "split_include": {},
    "split_list": {},
    "set_lockdown": {"enabled": (True, lambda v: _bool(v, "enabled"))},
    "pause_lockdown": {"seconds": (True, _seconds)},
    "resume_lockdown": {},
}
VERBS = frozenset(_VERBS)


def decode_request(line: bytes) -> Request:
    """Parse and validate one request line; raises `ProtocolError` (never anything else)."""
    if len(line) > MAX_REQUEST_BYTES:
        raise ProtocolError("too_large", f"request longer than {MAX_REQUEST_BYTES} bytes")
    try:
        msg = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise ProtocolError("malformed", "request is not one line of UTF-8 JSON") from e
    if not isinstance(msg, dict):
        raise ProtocolError("malformed", "request must be a JSON object")
    rid = msg.get("id")
    if isinstance(rid, bool) or not isinstance(rid, int) or not 0 <= rid < 2**53:
        raise ProtocolError("malformed", "id must be a non-negative integer")
    if msg.get("v") != VERSION:
        raise ProtocolError("unsupported_version", f"this helper speaks protocol version {VERSION}", rid)
    extra = set(msg) - {"v", "id", "verb", "args"}
    if extra:
        raise ProtocolError("invalid", f"unknown field {sorted(extra)[0]!r}", rid)
    verb = msg.get("verb")
    if not isinstance(verb, str) or verb not in _VERBS:
        raise ProtocolError("unknown_verb", f"verb must be one of {', '.join(sorted(_VERBS))}", rid)
    args = msg.get("args", {})
    if not isinstance(args, dict):
        raise ProtocolError("invalid", "args must be an object", rid)
    schema = _VERBS[verb]
    clean: dict[str, Any] = {}
    for key in args:
        if key not in schema:
            raise ProtocolError("invalid", f"{verb}: unknown argument {str(key)[:40]!r}", rid)
    for key, (required, check) in schema.items():
        if key not in args:
            if required:
                raise ProtocolError("invalid", f"{verb}: missing argument {key!r}", rid)
            clean[key] = None
            continue
        try:
            clean[key] = check(args[key])
        except ProtocolError as e:
            e.request_id = rid
            raise
    return Request(rid, verb, clean)


def encode(message: dict[str, Any]) -> bytes:
    return (json.dumps({"v": VERSION, **message}, separators=(",", ":")) + "\n").encode()


def response(request_id: int | None, result: Any) -> bytes:
    return encode({"id": request_id, "ok": True, "result": result})


def error(request_id: int | None, code: str, message: str, **details: Any) -> bytes:
    """An error response; ``details`` are extra fields of the error object (``keys`` of
    ``restart_required``)."""
    return encode({"id": request_id, "ok": False, "error": {**details, "code": code, "message": message}})


def event(kind: str, **fields: Any) -> bytes:
    return encode({"event": kind, **fields})


def has_control_characters(text: str) -> bool:
    return _CONTROL.search(text) is not None
