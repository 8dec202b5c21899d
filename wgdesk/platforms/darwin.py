"""Darwin networking: not implemented yet (see DESIGN.md §5 for the intended method)."""

from __future__ import annotations

from wgdesk.platforms import Unsupported


def __getattr__(name: str) -> object:
    raise Unsupported(f"wgdesk.platforms.darwin.{name} is not implemented yet")
