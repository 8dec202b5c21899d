"""The trusted networks in the settings: the current network with "Trust this network", and the list of
trusted networks with "Remove". Tunnels with "Connect automatically on untrusted networks" connect on
every other network (see :mod:`wgdesk.app.network_rules`)."""

from __future__ import annotations

from PySide6.QtCore import Qt, Slot
from PySide6.QtWidgets import (
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from wgdesk.app.labels import network_text
from wgdesk.app.network_watch import NetworkWatch


class TrustedNetworks(QGroupBox):
    """Current network, "Trust this network", trusted networks and "Remove"."""

    def __init__(self, networks: NetworkWatch, parent: QWidget | None = None) -> None:
        super().__init__(self.tr("Networks"), parent)
        self.setObjectName("networks")
        self._networks = networks
        layout = QVBoxLayout(self)
        row = QHBoxLayout()
        self.current = QLabel()
        self.current.setObjectName("current-network")
        self.current.setTextFormat(Qt.TextFormat.PlainText)  # an SSID is anybody's text
        self.current.setWordWrap(True)
        self.trust_button = QPushButton(self.tr("&Trust this network"))
        self.trust_button.setObjectName("trust-network")
        row.addWidget(self.current, 1)
        row.addWidget(self.trust_button)
        layout.addLayout(row)
        layout.addWidget(QLabel(self.tr("Trusted networks:")))
        self.list = QListWidget()
        self.list.setObjectName("trusted-networks")
        self.list.setAccessibleName(self.tr("Trusted networks"))
        layout.addWidget(self.list)
        buttons = QHBoxLayout()
        self.remove_button = QPushButton(self.tr("&Remove"))
        self.remove_button.setObjectName("remove-network")
        buttons.addStretch(1)
        buttons.addWidget(self.remove_button)
        layout.addLayout(buttons)
        note = QLabel(
            self.tr(
                "Tunnels with \u201cConnect automatically on untrusted networks\u201d (in the tunnel's pane) "
                "connect on every network not listed here, and disconnect again on a listed one. Tunnels "
                "you connect yourself are never disconnected by this."
            )
        )
        note.setWordWrap(True)
        layout.addWidget(note)
        self.trust_button.clicked.connect(self._trust)
        self.remove_button.clicked.connect(self._remove)
        self.list.currentItemChanged.connect(lambda *_: self._enable())
        networks.changed.connect(self.refresh)
        self.refresh()

    @Slot()
    def refresh(self) -> None:
        """Show the current network and the trusted ones."""
        w = self._networks
        network = w.current()
        trusted = w.current_trusted()
        self.current.setText(
            self.tr("Current network: {network}").format(network=network_text(network, trusted))
        )
        self.trust_button.setEnabled(network is not None and not trusted)
        selected = self.list.currentItem()
        keep = selected.data(Qt.ItemDataRole.UserRole) if selected else None
        self.list.clear()
        trusted_networks = w.trusted_networks()
        labels = [n.label for n in trusted_networks]
        for n in trusted_networks:
            # NetworkManager names every wired network "Wired connection 1": then the key tells them apart
            shown = n.label if labels.count(n.label) == 1 else f"{n.label} ({n.key.partition(':')[2]})"
            item = QListWidgetItem(shown)
            item.setData(Qt.ItemDataRole.UserRole, n.key)
            item.setToolTip(n.key)
            self.list.addItem(item)
            if n.key == keep:
                self.list.setCurrentItem(item)
        self._enable()

    def labels(self) -> list[str]:
        """The trusted networks as shown."""
        return [self.list.item(i).text() for i in range(self.list.count())]

    def select(self, label: str) -> None:
        """Select the trusted network shown as *label*."""
        for i in range(self.list.count()):
            if self.list.item(i).text() == label:
                self.list.setCurrentRow(i)

    def _enable(self) -> None:
        self.remove_button.setEnabled(self.list.currentItem() is not None)

    @Slot()
    def _trust(self) -> None:
        network = self._networks.current()
        if network is not None:
            self._networks.trust(network)

    @Slot()
    def _remove(self) -> None:
        item = self.list.currentItem()
        if item is not None:
            self._networks.distrust(str(item.data(Qt.ItemDataRole.UserRole)))
