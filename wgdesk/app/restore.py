""" "Reconnect the tunnels that were connected when wgdesk last ran".

Tunnels stay up when the app quits, but not across a reboot or a helper restart. On every status report the
tunnels the user has up are remembered (``last_connected`` in the settings); the ones a network rule connected
are left out — at the next start the rule alone decides for them, on the network found then. With the setting
on, :meth:`Restore.reconnect_at_start` connects the remembered ones once the helper first answers (before the
rules first look, so restored tunnels are the user's).
"""

from __future__ import annotations

from PySide6.QtCore import QObject, Slot

from wgdesk.app.library import TunnelLibrary
from wgdesk.app.live_status import LiveStatus
from wgdesk.app.network_watch import NetworkWatch
from wgdesk.app.settings import AppSettings
from wgdesk.app.switch import TunnelSwitch


class Restore(QObject):
    """Remembers which tunnels the user has up; reconnects them once at start when asked."""

    def __init__(
        self,
        settings: AppSettings,
        library: TunnelLibrary,
        live: LiveStatus,
        switch: TunnelSwitch,
        networks: NetworkWatch,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._settings = settings
        self._library = library
        self._live = live
        self._switch = switch
        self._networks = networks
        self._to_restore: list[str] | None = None
        live.reportReceived.connect(self._on_report)

    def reconnect_at_start(self) -> None:
        """Connect the tunnels remembered from the last run (read now) once the helper first answers."""
        self._to_restore = self._settings.last_connected()

    @Slot()
    def _on_report(self) -> None:
        restorable = sorted(set(self._live.reported()) - self._networks.rule_connected())
        if restorable != self._settings.last_connected():
            self._settings.set_last_connected(restorable)
        if self._to_restore is None:
            return
        names, wanted, self._to_restore = set(self._library.names()), self._to_restore, None
        for name in wanted:
            if name in names and self._live.status(name) is None:
                self._switch.connect_tunnel(name)
