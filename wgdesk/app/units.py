"""Human-readable durations, sizes and rates, in the layout `wg show` uses ("1 minute, 4 seconds ago")."""

from __future__ import annotations

from PySide6.QtCore import QCoreApplication

_CTX = "units"


def _tr(text: str) -> str:
    return QCoreApplication.translate(_CTX, text)


_UNITS = (
    (365 * 24 * 3600, "1 year", "{n} years"),
    (24 * 3600, "1 day", "{n} days"),
    (3600, "1 hour", "{n} hours"),
    (60, "1 minute", "{n} minutes"),
    (1, "1 second", "{n} seconds"),
)


def duration(seconds: float) -> str:
    """``64`` → ``"1 minute, 4 seconds"`` (whole seconds, largest units first, zero parts left out)."""
    left = max(0, int(seconds))
    parts: list[str] = []
    for size, one, many in _UNITS:
        n, left = divmod(left, size)
        if n:
            parts.append(_tr(one) if n == 1 else _tr(many).format(n=n))
    return ", ".join(parts) if parts else _tr("0 seconds")


def ago(timestamp: float | None, now: float) -> str:
    """A Unix *timestamp* relative to *now*: ``"1 minute, 4 seconds ago"``, ``"Now"`` or ``"never"``."""
    if not timestamp:
        return _tr("never")
    delta = now - timestamp
    if delta < 1:
        return _tr("Now")
    return _tr("{duration} ago").format(duration=duration(delta))


def size(n: float) -> str:
    """Bytes in binary units as `wg show` prints them: ``"1.52 KiB"``, ``"512 B"``."""
    if n < 1024:
        return _tr("{n} B").format(n=int(n))
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        n /= 1024
        if n < 1024 or unit == "TiB":
            return f"{n:.2f} {unit}"
    raise AssertionError("unreachable")


def rate(bytes_per_second: float) -> str:
    """A transfer rate: ``"12.30 KiB/s"``."""
    return _tr("{size}/s").format(size=size(bytes_per_second))
