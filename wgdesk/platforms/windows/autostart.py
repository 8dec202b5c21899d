"""Start at login on Windows: the value ``wgdesk`` of the user's ``Run`` registry key."""

from __future__ import annotations

import contextlib
from pathlib import Path

RUN_KEY = r"Software\Microsoft\Windows\CurrentVersion\Run"
VALUE = "wgdesk"


class RunKey:
    """A `wgdesk.platforms.interface.Autostart` in ``HKEY_CURRENT_USER\\...\\Run``."""

    def location(self) -> Path:
        return Path(rf"HKEY_CURRENT_USER\{RUN_KEY}") / VALUE

    def enabled(self) -> bool:
        import winreg

        try:
            with winreg.OpenKey(winreg.HKEY_CURRENT_USER, RUN_KEY) as key:
                winreg.QueryValueEx(key, VALUE)
        except OSError:
            return False
        return True

    def set(self, enabled: bool, command: str) -> None:
        import winreg

        with winreg.CreateKey(winreg.HKEY_CURRENT_USER, RUN_KEY) as key:
            if enabled:
                winreg.SetValueEx(key, VALUE, 0, winreg.REG_SZ, f'"{command}" --minimized')
            else:
                with contextlib.suppress(FileNotFoundError):
                    winreg.DeleteValue(key, VALUE)
