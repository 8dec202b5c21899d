"""Start at login: the platform's own mechanism — an XDG autostart entry (Linux), a LaunchAgent (macOS), the
``Run`` registry key (Windows)."""

from __future__ import annotations

import sys
from pathlib import Path

from PySide6.QtCore import QSettings

from wgdesk import platforms

_RUN_KEY = r"HKEY_CURRENT_USER\Software\Microsoft\Windows\CurrentVersion\Run"
_LAUNCH_AGENT = "org.wgdesk.wgdesk"

AUTOSTART_ENTRY = """[Desktop Entry]
Type=Application
Name=wgdesk
Comment=WireGuard tunnels in the system tray
Exec={command}
Icon=wgdesk
Terminal=false
X-GNOME-Autostart-enabled=true
"""

_PLIST = """<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
  <key>Label</key><string>{label}</string>
  <key>ProgramArguments</key><array><string>{command}</string><string>--minimized</string></array>
  <key>RunAtLoad</key><true/>
</dict>
</plist>
"""


def _xdg_config_home() -> Path:
    """``$XDG_CONFIG_HOME`` as the XDG spec reads it (Linux: the user's wgdesk directory is inside it)."""
    return platforms.user_config_dir().parent


def launch_command() -> str:
    """How the login session starts us: the ``wgdesk`` next to this interpreter, else the bare name."""
    candidate = Path(sys.executable).with_name(platforms.executable_name("wgdesk"))
    return str(candidate) if candidate.exists() else "wgdesk"


def autostart_path() -> Path:
    """Where the start-at-login entry lives (for Windows: a pseudo-path naming the registry value)."""
    if platforms.system() == "darwin":
        return Path.home() / "Library" / "LaunchAgents" / f"{_LAUNCH_AGENT}.plist"
    if platforms.system() == "win32":
        return Path(_RUN_KEY) / "wgdesk"
    return _xdg_config_home() / "autostart" / "wgdesk.desktop"


def start_at_login() -> bool:
    """Whether the app starts when the user logs in."""
    if platforms.system() == "win32":
        return QSettings(_RUN_KEY, QSettings.Format.NativeFormat).contains("wgdesk")
    return autostart_path().exists()


def set_start_at_login(enabled: bool) -> None:
    """Create or remove the start-at-login entry."""
    command = launch_command()
    if platforms.system() == "win32":
        run = QSettings(_RUN_KEY, QSettings.Format.NativeFormat)
        if enabled:
            run.setValue("wgdesk", f'"{command}" --minimized')
        else:
            run.remove("wgdesk")
        run.sync()
        return
    path = autostart_path()
    if not enabled:
        path.unlink(missing_ok=True)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    if platforms.system() == "darwin":
        text = _PLIST.format(label=_LAUNCH_AGENT, command=command)
    else:
        text = AUTOSTART_ENTRY.format(command=f"{command} --minimized")
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.replace(path)
