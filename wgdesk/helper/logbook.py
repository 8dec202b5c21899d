"""The helper's log: a bounded in-memory record per tunnel (served by the ``logs`` verb) that is also
written to stderr (the journal, under systemd).

Secrets never reach it: the helper logs no config text, and engine output passes `redact`, which
hides anything shaped like a whole WireGuard key (44 base64 characters or 64 hex digits).
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import deque
from typing import Any

_KEYLIKE = re.compile(r"(?<![A-Za-z0-9+/])[A-Za-z0-9+/]{43}=|(?<![0-9a-fA-F])[0-9a-fA-F]{64}(?![0-9a-fA-F])")

log = logging.getLogger("wgdesk.helper")


def redact(text: str) -> str:
    return _KEYLIKE.sub("(key)", text)


class LogBook:
    """Thread-safe ring buffer of log records."""

    def __init__(self, size: int = 4000) -> None:
        self._records: deque[dict[str, Any]] = deque(maxlen=size)
        self._lock = threading.Lock()

    def add(self, level: str, source: str, tunnel: str | None, message: str) -> None:
        message = redact(message)
        record = {"time": time.time(), "level": level, "source": source, "tunnel": tunnel, "message": message}
        with self._lock:
            self._records.append(record)
        prefix = f"[{tunnel}] " if tunnel else ""
        python_level = getattr(logging, level.upper(), logging.INFO)
        if source == "engine":
            # the engine is verbose; the system log gets its errors, the `logs` verb everything
            python_level = logging.WARNING if message.startswith("ERROR") else logging.DEBUG
        log.log(
            python_level,
            "%s%s%s",
            prefix,
            "engine: " if source == "engine" else "",
            message,
        )

    def info(self, tunnel: str | None, message: str) -> None:
        self.add("info", "helper", tunnel, message)

    def warning(self, tunnel: str | None, message: str) -> None:
        self.add("warning", "helper", tunnel, message)

    def error(self, tunnel: str | None, message: str) -> None:
        self.add("error", "helper", tunnel, message)

    def records(self, tunnel: str | None = None, since: float | None = None) -> list[dict[str, Any]]:
        with self._lock:
            items = list(self._records)
        return [
            r
            for r in items
            if (tunnel is None or r["tunnel"] == tunnel) and (since is None or r["time"] > since)
        ]
