"""The error every helper operation raises for a client: a wire error code and a message to show."""

from __future__ import annotations

from typing import Any


class TunnelError(Exception):
    """An operation the helper refuses or could not complete; ``code`` is the wire error code."""

    def __init__(self, code: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details or {}
        """Extra fields of the wire error object (``keys`` of ``restart_required``)."""
