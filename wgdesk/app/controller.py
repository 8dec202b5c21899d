"""The app's model, composed: one object per job, wired together once, started and stopped together.

============  ================================================================================================
``library``   :class:`~wgdesk.app.library.TunnelLibrary` — the store, its caches, import/export
``live``      :class:`~wgdesk.app.live_status.LiveStatus` — the helper's status, health, rates, whether the
              helper can be used, notifications of state changes
``switch``    :class:`~wgdesk.app.switch.TunnelSwitch` — connect, disconnect, restart, toggles, live update
``lockdown``  :class:`~wgdesk.app.lockdown.Lockdown` — lockdown state, pause countdown, verbs
``networks``  :class:`~wgdesk.app.network_watch.NetworkWatch` — the current and trusted networks, rules by
              network
``restore``   :class:`~wgdesk.app.restore.Restore` — "reconnect the tunnels of the last run"
``mtu``       :class:`~wgdesk.app.mtu_probe.MtuProbe` — the doctor's MTU test
``notices``   :class:`~wgdesk.app.notices.Notices` — what the user is told (notifications, failures)
``runner``    the shared :class:`~wgdesk.app.workers.TaskRunner` for helper calls and the keyring
``calls``     :class:`~wgdesk.app.workers.HelperCalls` — a helper request as a task of that runner
============  ================================================================================================

Views read from these parts and call their verbs; the parts never block the UI thread and report back only
through their signals. Nothing here is a view, and no part imports a view.
"""

from __future__ import annotations

from PySide6.QtCore import QObject

from wgdesk.app.library import TunnelLibrary
from wgdesk.app.live_status import LiveStatus
from wgdesk.app.lockdown import Lockdown
from wgdesk.app.mtu_probe import MtuProbe
from wgdesk.app.network_watch import NETWORK_INTERVAL, NetworkProbe, NetworkWatch
from wgdesk.app.notices import Notices
from wgdesk.app.restore import Restore
from wgdesk.app.settings import AppSettings
from wgdesk.app.switch import TunnelSwitch
from wgdesk.app.workers import ClientFactory, HelperCalls, TaskRunner
from wgdesk.platforms import current_network
from wgdesk.tunnels import TunnelStore


class TunnelController(QObject):
    """Owns the parts of the model (see the module docstring) and their lifetime."""

    def __init__(
        self,
        store: TunnelStore,
        client_factory: ClientFactory,
        settings: AppSettings,
        parent: QObject | None = None,
        poll_interval: float = 1.0,
        network_probe: NetworkProbe | None = current_network,
        network_interval: float = NETWORK_INTERVAL,
    ) -> None:
        super().__init__(parent)
        self.settings = settings
        self.runner = TaskRunner(self)
        self.calls = HelperCalls(self.runner, client_factory)
        self.notices = Notices(self)
        self.library = TunnelLibrary(store, settings, self.calls, self.notices, self)
        self.live = LiveStatus(client_factory, self.notices, self, poll_interval)
        self.switch = TunnelSwitch(self.library, self.live, settings, self.calls, self.notices, self)
        self.lockdown = Lockdown(self.live, self.calls, self.notices, self)
        self.networks = NetworkWatch(
            settings,
            self.library,
            self.live,
            self.switch,
            self.notices,
            network_probe,
            network_interval,
            self,
        )
        self.restore = Restore(settings, self.library, self.live, self.switch, self.networks, self)
        self.mtu = MtuProbe(self.live, self.calls)

    def start(self) -> None:
        """Start watching the helper (and, with a network probe, the network)."""
        self.live.start()
        self.networks.start()

    def stop(self) -> None:
        """Stop the status thread and the network probe, and wait for running tasks."""
        self.networks.stop()
        self.live.stop()
        self.runner.shutdown()
