"""The app's own preferences (not the tunnels): start at login, restore tunnels, per-tunnel toggles.

Stored with QSettings in ``wgdesk.conf`` of the user's wgdesk directory, next to ``tunnels/``
(``platforms.user_config_dir()``: ``$XDG_CONFIG_HOME/wgdesk`` on Linux). Start-at-login is the platform's own
mechanism: an XDG autostart entry, a macOS LaunchAgent, or the Windows ``Run`` registry key.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from wgdesk import platforms
from wgdesk.app.networks import TrustedNetworks

if TYPE_CHECKING:
    from wgdesk.app.controller import TunnelController

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


AUTO_CONNECT = "connect_untrusted"
"""Per-tunnel flag: connect automatically on untrusted networks (off unless set)."""


@dataclass(frozen=True)
class TrustedNetwork:
    """A network the user trusts: its identity key (``platforms.NetworkIdentity.key``) and a label."""

    key: str
    label: str


class AppSettings:
    """Typed access to the app's preferences."""

    def __init__(self, settings: QSettings | None = None) -> None:
        self._s = settings or QSettings(
            str(platforms.user_config_dir() / "wgdesk.conf"), QSettings.Format.IniFormat
        )

    # -- start at login -------

    @staticmethod
    def autostart_path() -> Path:
        """Where the start-at-login entry lives (for Windows: a pseudo-path naming the registry value)."""
        if platforms.system() == "darwin":
            return Path.home() / "Library" / "LaunchAgents" / f"{_LAUNCH_AGENT}.plist"
        if platforms.system() == "win32":
            return Path(_RUN_KEY) / "wgdesk"
        return _xdg_config_home() / "autostart" / "wgdesk.desktop"

    def start_at_login(self) -> bool:
        """Whether the app starts when the user logs in."""
        if platforms.system() == "win32":
            return QSettings(_RUN_KEY, QSettings.Format.NativeFormat).contains("wgdesk")
        return self.autostart_path().exists()

    def set_start_at_login(self, enabled: bool) -> None:
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
        path = self.autostart_path()
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

    # -- restore tunnels -------

    def restore_tunnels(self) -> bool:
        """Whether the tunnels that were connected at the last quit are reconnected on start."""
        return self._bool("general/restore_tunnels", False)

    def set_restore_tunnels(self, enabled: bool) -> None:
        """Turn reconnecting at start on or off."""
        self._s.setValue("general/restore_tunnels", enabled)
        self._s.sync()

    def last_connected(self) -> list[str]:
        """The tunnels that were connected when the app last saw them."""
        value = self._s.value("general/last_connected", [])
        if isinstance(value, str):
            return [value] if value else []
        return [str(v) for v in value] if isinstance(value, list) else []

    def set_last_connected(self, names: list[str]) -> None:
        """Remember which tunnels are up now."""
        self._s.setValue("general/last_connected", sorted(names))
        self._s.sync()

    # -- per tunnel toggles -------

    def tunnel_option(self, name: str, option: str) -> bool | None:
        """``full_tunnel`` or ``kill_switch`` for *name*; None means "the helper's default"."""
        key = f"tunnels/{name}/{option}"
        return self._bool(key, False) if self._s.contains(key) else None

    def set_tunnel_option(self, name: str, option: str, value: bool) -> None:
        """Remember a toggle of *name*."""
        self._s.setValue(f"tunnels/{name}/{option}", value)
        self._s.sync()

    def forget_tunnel(self, name: str) -> None:
        """Drop every preference of *name* (after delete or rename)."""
        self._s.remove(f"tunnels/{name}")
        self._s.sync()

    # -- rules by network -------

    def auto_connect(self, name: str) -> bool:
        """Whether *name* is connected automatically on untrusted networks."""
        return bool(self.tunnel_option(name, AUTO_CONNECT))

    def set_auto_connect(self, name: str, enabled: bool) -> None:
        """Set or clear *name*'s "connect automatically on untrusted networks"."""
        self.set_tunnel_option(name, AUTO_CONNECT, enabled)

    def trusted_networks(self) -> list[TrustedNetwork]:
        """The networks the user trusts, in the order they were added."""
        try:
            found = json.loads(str(self._s.value("networks/trusted", "[]")))
        except ValueError:
            return []
        if not isinstance(found, list):
            return []
        return [
            TrustedNetwork(str(n["key"]), str(n.get("label") or n["key"]))
            for n in found
            if isinstance(n, dict) and n.get("key")
        ]

    def trust_network(self, key: str, label: str) -> None:
        """Add a network to the trusted ones (its label is updated when it is there already)."""
        networks = [n for n in self.trusted_networks() if n.key != key] + [TrustedNetwork(key, label)]
        self._save_trusted(networks)

    def distrust_network(self, key: str) -> None:
        """Remove a network from the trusted ones."""
        self._save_trusted([n for n in self.trusted_networks() if n.key != key])

    def _save_trusted(self, networks: list[TrustedNetwork]) -> None:
        text = json.dumps([{"key": n.key, "label": n.label} for n in networks], ensure_ascii=False)
        self._s.setValue("networks/trusted", text)
        self._s.sync()

    def rule_connected(self) -> list[str]:
        """The tunnels a network rule connected and may take down again (kept across restarts, since
        tunnels stay up when the app quits)."""
        value = self._s.value("networks/rule_connected", [])
        if isinstance(value, str):
            return [value] if value else []
        return [str(v) for v in value] if isinstance(value, list) else []

    def set_rule_connected(self, names: list[str]) -> None:
        """Remember which tunnels a network rule connected."""
        if sorted(names) != self.rule_connected():
            self._s.setValue("networks/rule_connected", sorted(names))
            self._s.sync()

    def _bool(self, key: str, default: bool) -> bool:
        value = self._s.value(key, default)
        if isinstance(value, str):
            return value.lower() in ("true", "1", "yes")
        return bool(value)


class SettingsDialog(QDialog):
    """Start at login, restore tunnels on start; with a controller also the trusted networks."""

    def __init__(
        self,
        settings: AppSettings,
        parent: QWidget | None = None,
        controller: TunnelController | None = None,
    ) -> None:
        super().__init__(parent)
        self._settings = settings
        self.setWindowTitle(self.tr("wgdesk settings"))
        self.setObjectName("settings")
        layout = QVBoxLayout(self)
        self.start_at_login = QCheckBox(self.tr("&Start wgdesk when I log in"))
        self.start_at_login.setChecked(settings.start_at_login())
        self.restore = QCheckBox(self.tr("&Reconnect the tunnels that were connected when wgdesk last ran"))
        self.restore.setChecked(settings.restore_tunnels())
        note = QLabel(
            self.tr("The login entry starts wgdesk minimised to the tray: {path}").format(
                path=settings.autostart_path()
            )
        )
        note.setWordWrap(True)
        layout.addWidget(self.start_at_login)
        layout.addWidget(note)
        layout.addWidget(self.restore)
        self.networks: TrustedNetworks | None = None
        self._controller = controller
        self.lockdown: QCheckBox | None = None
        self.lockdown_reason: QLabel | None = None
        self.lockdown_pause: QPushButton | None = None
        """Pauses lockdown (a Wi-Fi login page) while it blocks, resumes it while paused; at once,
        not on OK."""
        self.lockdown_pause_note: QLabel | None = None
        self._lockdown_touched = False
        if controller is not None:
            self._add_lockdown(layout, controller)
            restore_note = QLabel(
                self.tr(
                    "Tunnels a network rule connected are not reconnected at start: the rule decides "
                    "for them on the network found then."
                )
            )
            restore_note.setWordWrap(True)
            layout.addWidget(restore_note)
            self.networks = TrustedNetworks(controller, self)
            layout.addWidget(self.networks)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)

    def _add_lockdown(self, layout: QVBoxLayout, controller: TunnelController) -> None:
        self.lockdown = QCheckBox(self.tr("&Block all traffic when no tunnel is connected (lockdown)"))
        self.lockdown.setObjectName("lockdown")
        self.lockdown.clicked.connect(self._lockdown_clicked)
        explanation = QLabel(
            self.tr(
                "With lockdown on, nothing leaves this computer except through a connected tunnel: not "
                "while it starts up, not after you disconnect, and not while wgdesk or its helper is "
                "stopped. Without a tunnel there is no internet at all. It applies to every user of this "
                "computer and stays on until it is turned off here or with `wgdeskctl lockdown off`."
            )
        )
        explanation.setWordWrap(True)
        explanation.setObjectName("lockdown-explanation")
        self.lockdown_reason = QLabel()
        self.lockdown_reason.setWordWrap(True)
        self.lockdown_reason.setObjectName("lockdown-reason")
        layout.addWidget(self.lockdown)
        layout.addWidget(explanation)
        layout.addWidget(self.lockdown_reason)
        row = QHBoxLayout()
        self.lockdown_pause_note = QLabel()
        self.lockdown_pause_note.setWordWrap(True)
        self.lockdown_pause_note.setObjectName("lockdown-pause-note")
        self.lockdown_pause = QPushButton()
        self.lockdown_pause.setObjectName("lockdown-pause")
        self.lockdown_pause.clicked.connect(self._pause_clicked)
        row.addWidget(self.lockdown_pause_note, 1)
        row.addWidget(self.lockdown_pause)
        layout.addLayout(row)
        controller.lockdownChanged.connect(self._show_lockdown)
        controller.helperProblemChanged.connect(self._show_lockdown)
        controller.statusChanged.connect(self._show_pause)  # a tunnel up or down; the countdown
        self._show_lockdown()

    def _lockdown_clicked(self) -> None:
        self._lockdown_touched = True

    def _pause_clicked(self) -> None:
        c = self._controller
        if c is None:
            return
        if c.lockdown_pause_left() is not None:
            c.resume_lockdown()  # on the controller's worker
        elif c.lockdown_pausable():
            c.pause_lockdown()

    def _show_pause(self) -> None:
        """The pause button and its note: "Pause lockdown for 2 minutes (Wi-Fi login)" while lockdown
        blocks (and the administrator allows pausing), "Resume now" with the time left while paused."""
        from wgdesk.app.tray import duration_text, pause_explanation
        from wgdesk.client import minutes_seconds

        button, note, c = self.lockdown_pause, self.lockdown_pause_note, self._controller
        if button is None or note is None or c is None:
            return
        left = c.lockdown_pause_left()
        if left is not None:
            note.setText(self.tr("Lockdown paused — {left} left.").format(left=minutes_seconds(left)))
            button.setText(self.tr("&Resume now"))
        elif c.lockdown_pausable():
            seconds = c.lockdown_pause_seconds()
            note.setText(pause_explanation(self, seconds))
            button.setText(
                self.tr("&Pause lockdown for {duration} (Wi-Fi login)").format(
                    duration=duration_text(seconds)
                )
            )
        visible = left is not None or c.lockdown_pausable()
        note.setVisible(visible)
        button.setVisible(visible)

    def _show_lockdown(self) -> None:
        """The checkbox as the helper has lockdown; disabled, with the reason, when it cannot change."""
        box, reason, c = self.lockdown, self.lockdown_reason, self._controller
        if box is None or reason is None or c is None:
            return
        self._show_pause()
        state = c.lockdown()
        if state is None:
            box.setEnabled(False)
            box.setChecked(False)
            if c.helper_problem:
                why = self.tr("{headline}: lockdown cannot be changed now.").format(
                    headline=c.helper_headline
                )
            elif c.status_received:
                why = self.tr("This wgdesk helper does not support lockdown; update wgdesk.")
            else:
                why = self.tr("Waiting for the wgdesk helper…")
            reason.setText(why)
            reason.setVisible(True)
            return
        policy = state.get("policy")
        if policy in ("always", "never"):
            box.setEnabled(False)
            box.setChecked(policy == "always")
            reason.setText(
                self.tr(
                    'Your administrator keeps lockdown on (lockdown = "always" in /etc/wgdesk/helper.toml).'
                )
                if policy == "always"
                else self.tr(
                    'Your administrator keeps lockdown off (lockdown = "never" in /etc/wgdesk/helper.toml).'
                )
            )
            reason.setVisible(True)
            return
        box.setEnabled(True)
        if not self._lockdown_touched:
            box.setChecked(bool(state.get("enabled")))
        reason.setText("")
        reason.setVisible(False)

    def accept(self) -> None:
        """Apply and close."""
        if self.start_at_login.isChecked() != self._settings.start_at_login():
            self._settings.set_start_at_login(self.start_at_login.isChecked())
        self._settings.set_restore_tunnels(self.restore.isChecked())
        c, box = self._controller, self.lockdown
        state = c.lockdown() if c is not None else None
        changed = box is not None and state is not None and box.isChecked() != bool(state.get("enabled"))
        if c is not None and box is not None and box.isEnabled() and changed:
            c.set_lockdown(box.isChecked())  # on the controller's worker
        super().accept()
