"""Start at login on Linux: an XDG autostart entry (``$XDG_CONFIG_HOME/autostart/wgdesk.desktop``)."""

from __future__ import annotations

import os
from pathlib import Path

from wgdesk.platforms.files import write_durably

AUTOSTART_ENTRY = """[Desktop Entry]
Type=Application
Name=wgdesk
Comment=WireGuard tunnels in the system tray
Exec={command}
Icon=wgdesk
Terminal=false
X-GNOME-Autostart-enabled=true
"""


def xdg_config_home() -> Path:
    """``$XDG_CONFIG_HOME`` as the XDG spec reads it: a relative value is invalid and ignored."""
    xdg = os.environ.get("XDG_CONFIG_HOME", "")
    return Path(xdg) if os.path.isabs(xdg) else Path.home() / ".config"


class XdgAutostart:
    """The backend's `wgdesk.platforms.interface.Autostart`."""

    def location(self) -> Path:
        return xdg_config_home() / "autostart" / "wgdesk.desktop"

    def enabled(self) -> bool:
        return self.location().exists()

    def set(self, enabled: bool, command: str) -> None:
        path = self.location()
        if not enabled:
            path.unlink(missing_ok=True)
            return
        write_durably(path, AUTOSTART_ENTRY.format(command=f"{command} --minimized").encode(), mode=0o644)
