"""Rules by network, carried out: which network the machine is on, which networks the user trusts, and the
tunnels that connect by themselves on the others.

The network is probed every few seconds on a one-thread runner of its own (a slow probe never delays helper
calls, and waiting for the shared runner to go idle is not kept waiting by it). Each answer, each change of
trust or of a tunnel's flag, and the first status report feed :class:`~wgdesk.app.network_rules.NetworkRules`
(the decisions, pure); this class does what they say through the :class:`~wgdesk.app.switch.TunnelSwitch` and
keeps which tunnels a rule connected in the settings.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QObject, QTimer, Signal, Slot

from wgdesk.app.advice import helper_unusable
from wgdesk.app.library import TunnelLibrary
from wgdesk.app.live_status import LiveStatus
from wgdesk.app.network_rules import NetworkRules
from wgdesk.app.notices import Notice, Notices
from wgdesk.app.settings import AppSettings, TrustedNetwork
from wgdesk.app.state import Health
from wgdesk.app.switch import TunnelSwitch
from wgdesk.app.workers import TaskRunner
from wgdesk.platforms import NetworkIdentity

NetworkProbe = Callable[[], NetworkIdentity | None]

NETWORK_INTERVAL = 5.0
"""Seconds between two looks at which network the machine is on."""


class NetworkWatch(QObject):
    """The current network, the trusted ones, the auto-connect flags; runs the rules on every change."""

    changed = Signal()  # the current network, or whether it is trusted, changed

    def __init__(
        self,
        settings: AppSettings,
        library: TunnelLibrary,
        live: LiveStatus,
        switch: TunnelSwitch,
        notices: Notices,
        probe: NetworkProbe | None,
        interval: float = NETWORK_INTERVAL,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._settings = settings
        self._library = library
        self._live = live
        self._switch = switch
        self._notices = notices
        self._probe = probe
        self._network: NetworkIdentity | None = None
        self._runner = TaskRunner(self, max_threads=1)
        self._timer = QTimer(self)
        self._timer.setInterval(int(interval * 1000))
        self._timer.timeout.connect(self.probe)
        self._rules = NetworkRules(settings.rule_connected())
        self._seen_status = False
        live.statusChanged.connect(self._on_status)
        switch.userConnected.connect(self._user_connected)
        switch.userDisconnected.connect(self._user_disconnected)
        library.tunnelRemoved.connect(self._stop_managing)

    # -- lifecycle -------

    def start(self) -> None:
        """Probe now and every few seconds (nothing without a probe)."""
        if self._probe is not None:
            self._timer.start()
            self.probe()

    def stop(self) -> None:
        """Stop probing; wait for a probe under way."""
        self._timer.stop()
        self._runner.shutdown()

    # -- reading -------

    @property
    def watching(self) -> bool:
        """Whether the network is looked at (there is a network probe)."""
        return self._probe is not None

    def current(self) -> NetworkIdentity | None:
        """The network the machine is on, as last seen (None: none, or not identified yet)."""
        return self._network

    def current_trusted(self) -> bool:
        """Whether the current network is one the user trusts (False when there is none)."""
        return self._network is not None and self._network.key in self._trusted_keys()

    def trusted_networks(self) -> list[TrustedNetwork]:
        """The networks the user trusts."""
        return self._settings.trusted_networks()

    def auto_connect(self, name: str) -> bool:
        """Whether *name* is connected automatically on untrusted networks."""
        return self._settings.auto_connect(name)

    def rule_connected(self) -> frozenset[str]:
        """The tunnels a network rule connected (and takes down on a trusted network)."""
        return self._rules.rule_connected

    # -- the user's changes -------

    def trust(self, network: NetworkIdentity) -> None:
        """Trust *network* from now on (tunnels a rule connected go down when it is the current one)."""
        self._settings.trust_network(network.key, network.label)
        self.changed.emit()
        self._apply()

    def distrust(self, key: str) -> None:
        """Stop trusting the network with identity *key*."""
        self._settings.distrust_network(key)
        self.changed.emit()
        self._apply()

    def set_auto_connect(self, name: str, enabled: bool) -> None:
        """Set or clear *name*'s "Connect automatically on untrusted networks" (clearing it leaves the
        tunnel as it is; setting it on an untrusted network connects it)."""
        self._settings.set_auto_connect(name, enabled)
        if not enabled:
            self._rules.stop_managing(name)
            self._save()
        self._apply()

    @Slot()
    def probe(self) -> None:
        """Look at the network now, on the network worker; the rules run on the answer."""
        if self._probe is None or self._runner.busy:
            return
        self._runner.submit(self._probe, self._on_network, lambda _exc: None)

    # -- news -------

    def _on_network(self, found: object) -> None:
        network = found if isinstance(found, NetworkIdentity) else None
        if network != self._network:
            self._network = network
            self.changed.emit()
        self._apply()

    @Slot()
    def _on_status(self) -> None:
        if self._seen_status or not self._live.status_received:
            return
        self._seen_status = True
        # the rules first see the tunnels after "restore tunnels" (a statusChanged slot) had its turn
        QTimer.singleShot(0, self, self._apply)

    @Slot(str)
    def _user_connected(self, name: str) -> None:
        self._rules.user_connected(name)
        self._save()

    @Slot(str)
    def _user_disconnected(self, name: str) -> None:
        self._rules.user_disconnected(name)
        self._save()

    @Slot(str)
    def _stop_managing(self, name: str) -> None:
        self._rules.stop_managing(name)
        self._save()

    # -- the rules -------

    def _trusted_keys(self) -> set[str]:
        return {n.key for n in self._settings.trusted_networks()}

    def _apply(self) -> None:
        """Ask the rules about the current network and do what they say. Not before the first status
        (which tunnels are up is not known) and not while the helper cannot be used."""
        if self._probe is None or not self._live.status_received or self._live.helper_problem:
            return
        flagged = {n for n in self._library.names() if self._settings.auto_connect(n)}
        actions = self._rules.decide(self._network, self._trusted_keys(), flagged, set(self._live.active()))
        label = actions.network.label if actions.network is not None else ""
        for name in actions.connect:
            self._rule_up(name, label)
        for name in actions.disconnect:
            self._rule_down(name, label)
        self._save()

    def _rule_up(self, name: str, network: str) -> None:
        text = self.tr("Connected {name}: untrusted network {network}").format(name=name, network=network)
        self._live.announce(name, Health.HEALTHY, self.tr("Network rule"), text)

        def failed(exc: BaseException) -> None:
            self._live.withdraw(name)
            self._live.drop_pending(name)
            if helper_unusable(exc):
                self._live.set_helper_problem(exc)
            text = self.tr("Untrusted network {network}: {error}").format(network=network, error=exc)
            self._notices.tell(self.tr("Could not connect {name}").format(name=name), text, Notice.ERROR)
            self._live.changed()

        self._switch.up(name, lambda _: self._live.poll_now(), failed)

    def _rule_down(self, name: str, network: str) -> None:
        text = self.tr("Disconnected {name}: trusted network {network}").format(name=name, network=network)
        self._live.announce(name, Health.DOWN, self.tr("Network rule"), text)

        def failed(exc: BaseException) -> None:
            self._live.withdraw(name)
            text = self.tr("Trusted network {network}: {error}").format(network=network, error=exc)
            self._notices.tell(self.tr("Could not disconnect {name}").format(name=name), text, Notice.ERROR)

        self._switch.down(name, lambda _: self._live.poll_now(), failed)

    def _save(self) -> None:
        self._settings.set_rule_connected(sorted(self._rules.rule_connected))
