"""wireguard-go-style log lines.

`DEBUG: (wg0) 2026/01/02 15:04:05 peer(AbCd…WxYz) - Sending handshake initiation`

`LOG_LEVEL=verbose` shows every handshake step, endpoint changes and drops (drops are summarised
at most once per second per reason so a flood cannot flood the log); `error` shows errors only;
`silent` nothing.
"""

from __future__ import annotations

import base64
import logging
import sys
import time
from typing import TextIO

from wgdesk.proto import events as ev

LOGGER_NAME = "wgdesk.engine"
log = logging.getLogger(LOGGER_NAME)

LEVELS = {
    "verbose": logging.DEBUG,
    "debug": logging.DEBUG,
    "error": logging.ERROR,
    "silent": logging.CRITICAL + 10,
}


class _Formatter(logging.Formatter):
    def __init__(self, ifname: str) -> None:
        super().__init__(fmt=None, datefmt="%Y/%m/%d %H:%M:%S")
        self.prefix = f"({ifname}) "

    def format(self, record: logging.LogRecord) -> str:
        level = "DEBUG" if record.levelno < logging.ERROR else "ERROR"
        stamp = time.strftime("%Y/%m/%d %H:%M:%S", time.localtime(record.created))
        line = f"{level}: {self.prefix}{stamp} {record.getMessage()}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def configure(ifname: str, level_name: str | None, stream: TextIO | None = None) -> int:
    """Send the engine's log to `stream` (stdout by default) at `LOG_LEVEL`; returns the level used.

    Unset or unknown `LOG_LEVEL` means `error`, as with wireguard-go.
    """
    level = LEVELS.get((level_name or "error").lower(), logging.ERROR)
    log.handlers.clear()
    log.propagate = False
    log.setLevel(level)
    if level <= logging.CRITICAL:
        handler = logging.StreamHandler(stream or sys.stdout)
        handler.setFormatter(_Formatter(ifname))
        log.addHandler(handler)
    return level


def peer_name(public_key: bytes | None) -> str:
    """wireguard-go's short peer name: the first and last four characters of the base64 key."""
    if not public_key:
        return "peer(unknown)"
    b64 = base64.b64encode(public_key).decode()
    return f"peer({b64[:4]}…{b64[-5:-1]})"


def _endpoint(endpoint: tuple[str, int] | None) -> str:
    if endpoint is None:
        return "(none)"
    host, port = endpoint
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class EventLog:
    """Turns `Device` events into log lines; drops are counted and summarised once a second."""

    def __init__(self) -> None:
        self._drops: dict[tuple[str, bytes | None], int] = {}
        self._last_summary = 0.0
        self.enabled = log.isEnabledFor(logging.DEBUG)

    def record(self, event: ev.Event) -> None:
        if isinstance(event, ev.PacketDropped):
            key = (event.reason.value, event.public_key)
            count = self._drops.get(key)
            if count is None:
                self._drops[key] = 0
                who = peer_name(event.public_key) + " - " if event.public_key else ""
                where = f" from {_endpoint(event.endpoint)}" if event.endpoint else ""
                log.debug("%sDropped packet%s: %s", who, where, event.reason.value)
            else:
                self._drops[key] = count + 1
            return
        message = describe(event)
        if message:
            log.debug("%s", message)

    def summarise(self, now: float) -> None:
        """Log the drops counted since the last summary (call about once a second)."""
        if now - self._last_summary < 1.0:
            return
        self._last_summary = now
        if not self._drops:
            return
        for (reason, public_key), count in self._drops.items():
            if count:
                who = peer_name(public_key) + " - " if public_key else ""
                log.debug("%sDropped %d more packets: %s", who, count, reason)
        self._drops.clear()


def describe(event: ev.Event) -> str:
    """The log line for one event, worded like wireguard-go's where it has one."""
    if isinstance(event, ev.HandshakeInitiationSent):
        again = " (retry)" if event.retry else ""
        to = _endpoint(event.endpoint)
        return f"{peer_name(event.public_key)} - Sending handshake initiation to {to}{again}"
    if isinstance(event, ev.HandshakeResponseSent):
        return (
            f"{peer_name(event.public_key)} - Received handshake initiation; "
            f"sending handshake response to {_endpoint(event.endpoint)}"
        )
    if isinstance(event, ev.HandshakeCompleted):
        role = "initiator: received handshake response" if event.initiator else "responder"
        return f"{peer_name(event.public_key)} - Session keypair established ({role})"
    if isinstance(event, ev.HandshakeGaveUp):
        return (
            f"{peer_name(event.public_key)} - Handshake did not complete after {event.attempts} attempts, "
            f"giving up"
        )
    if isinstance(event, ev.CookieReplySent):
        return f"Sending cookie response for denied handshake message for {_endpoint(event.endpoint)}"
    if isinstance(event, ev.CookieReplyReceived):
        return f"{peer_name(event.public_key)} - Received cookie response"
    if isinstance(event, ev.EndpointChanged):
        old, new = _endpoint(event.old), _endpoint(event.new)
        return f"{peer_name(event.public_key)} - Endpoint changed from {old} to {new}"
    if isinstance(event, ev.KeypairExpired):
        return f"{peer_name(event.public_key)} - Removing all keys: no new ones for 540 seconds"
    if isinstance(event, ev.UnderLoad):
        return "Device under load: handshakes now require a cookie"
    return repr(event)
