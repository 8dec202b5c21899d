"""Start at login on macOS: a LaunchAgent (``~/Library/LaunchAgents/org.wgdesk.wgdesk.plist``)."""

from __future__ import annotations

import plistlib
from pathlib import Path

from wgdesk.platforms.files import write_durably

LAUNCH_AGENT = "org.wgdesk.wgdesk"


class LaunchAgent:
    """A `wgdesk.platforms.interface.Autostart`: ``RunAtLoad`` starts ``COMMAND --minimized``."""

    def location(self) -> Path:
        return Path.home() / "Library" / "LaunchAgents" / f"{LAUNCH_AGENT}.plist"

    def enabled(self) -> bool:
        return self.location().exists()

    def set(self, enabled: bool, command: str) -> None:
        path = self.location()
        if not enabled:
            path.unlink(missing_ok=True)
            return
        agent = {"Label": LAUNCH_AGENT, "ProgramArguments": [command, "--minimized"], "RunAtLoad": True}
        write_durably(path, plistlib.dumps(agent), mode=0o644)
