"""The app's own preferences (not the tunnels): start at login, restore tunnels, per-tunnel toggles, trusted
networks. The model only — :mod:`wgdesk.app.settings_dialog` is its view.

Stored with QSettings in ``wgdesk.conf`` of the user's wgdesk directory, next to ``tunnels/``
(``platforms.user_config_dir()``: ``$XDG_CONFIG_HOME/wgdesk`` on Linux). Start-at-login is the platform's own
mechanism (:mod:`wgdesk.app.autostart`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QSettings

from wgdesk import platforms
from wgdesk.app import autostart

FULL_TUNNEL = "full_tunnel"
"""Per-tunnel toggle: send all traffic through the tunnel (default: on when a peer routes everything)."""
KILL_SWITCH = "kill_switch"
"""Per-tunnel toggle: block traffic outside the tunnel while it is up (default as `FULL_TUNNEL`)."""
AUTO_CONNECT = "connect_untrusted"
"""Per-tunnel flag: connect automatically on untrusted networks (off unless set)."""
TUNNEL_OPTIONS = (FULL_TUNNEL, KILL_SWITCH, AUTO_CONNECT)


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
        return autostart.autostart_path()

    def start_at_login(self) -> bool:
        """Whether the app starts when the user logs in."""
        return autostart.start_at_login()

    def set_start_at_login(self, enabled: bool) -> None:
        """Create or remove the start-at-login entry."""
        autostart.set_start_at_login(enabled)

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
        """One of `TUNNEL_OPTIONS` for *name*; None means "not set" (the default applies)."""
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

    def rename_tunnel(self, old: str, new: str) -> None:
        """Move the preferences of *old* to *new* (the tunnel was renamed)."""
        for option in TUNNEL_OPTIONS:
            value = self.tunnel_option(old, option)
            if value is not None:
                self.set_tunnel_option(new, option, value)
        self.forget_tunnel(old)

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
