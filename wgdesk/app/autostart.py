"""Start at login: the platform's own mechanism (`wgdesk.platforms`: an XDG autostart entry on Linux,
a LaunchAgent on macOS, the ``Run`` registry key on Windows), starting the ``wgdesk`` of this install."""

from __future__ import annotations

import sys
from pathlib import Path

from wgdesk import platforms


def launch_command() -> str:
    """How the login session starts us: the ``wgdesk`` next to this interpreter, else the bare name."""
    candidate = Path(sys.executable).with_name(platforms.executable_name("wgdesk"))
    return str(candidate) if candidate.exists() else "wgdesk"


def autostart_path() -> Path:
    """Where the start-at-login entry lives (for Windows: a pseudo-path naming the registry value)."""
    return platforms.autostart_location()


def start_at_login() -> bool:
    """Whether the app starts when the user logs in."""
    return platforms.start_at_login()


def set_start_at_login(enabled: bool) -> None:
    """Create or remove the start-at-login entry."""
    platforms.set_start_at_login(enabled, launch_command())
