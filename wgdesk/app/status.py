"""The details pane: the interface and, per peer, live handshake, transfer, rates and a throughput graph."""

from __future__ import annotations

import time
from typing import Any

from PySide6.QtCore import QCoreApplication, Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from wgdesk.app import units
from wgdesk.app.controller import TunnelController
from wgdesk.app.graph import ThroughputGraph, rates
from wgdesk.app.labels import health_text
from wgdesk.snapshots import PeerSnapshot


def _join(values: Any) -> str:
    if values is None:
        return ""
    if isinstance(values, (str, int)):
        return str(values)
    return ", ".join(str(v) for v in values)


def _endpoint(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, tuple) and len(value) == 2:
        host, port = value
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return str(value)


def endpoint_text(live: PeerSnapshot | None, configured: Any, now: float) -> str:
    """The peer's endpoint as shown: the live one (else the configured one); for a host name the
    helper resolves, ``vpn.example.org → 203.0.113.5:51820 (resolved 2 minutes ago)``."""
    shown = _endpoint((live.endpoint if live else None) or configured)
    host = live.endpoint_host if live else None
    if live is None or not host:
        return shown
    address = _endpoint(live.endpoint) or QCoreApplication.translate("PeerView", "(not resolved)")
    text = f"{host} → {address}"
    resolved = live.endpoint_resolved_at
    if resolved:
        ago = units.ago(float(resolved), now)
        when = QCoreApplication.translate("PeerView", "just now") if ago == "Now" else ago
        text += " " + QCoreApplication.translate("PeerView", "(resolved {when})").format(when=when)
    return text


def _value_label(text: str = "", name: str = "") -> QLabel:
    label = QLabel(text)
    label.setTextFormat(Qt.TextFormat.PlainText)  # values come from configs and the helper
    label.setTextInteractionFlags(
        Qt.TextInteractionFlag.TextSelectableByMouse | Qt.TextInteractionFlag.TextSelectableByKeyboard
    )
    label.setWordWrap(True)
    if name:
        label.setObjectName(name)
    return label


class KeyField(QWidget):
    """A public key with a copy button."""

    def __init__(self, name: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.label = _value_label(name=name)
        self.label.setWordWrap(False)
        font = self.label.font()
        font.setFamily("monospace")
        self.label.setFont(font)
        self.copy = QPushButton(self.tr("Copy"))
        self.copy.setObjectName(f"{name}-copy")
        self.copy.setToolTip(self.tr("Copy the key to the clipboard"))
        self.copy.clicked.connect(self._copy)
        layout.addWidget(self.label, 1)
        layout.addWidget(self.copy)

    def set_key(self, key: str | None) -> None:
        """Show *key* (None: unknown, and nothing to copy)."""
        self.label.setText(key or self.tr("(unknown)"))
        self.copy.setEnabled(bool(key))

    def _copy(self) -> None:
        QGuiApplication.clipboard().setText(self.label.text())


class PeerView(QGroupBox):
    """One peer: static config plus live status."""

    def __init__(self, public_key: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.public_key = public_key
        self.setTitle(self.tr("Peer"))
        form = QFormLayout(self)
        self.key = KeyField("peer-public-key")
        self.key.set_key(public_key)
        self.endpoint = _value_label(name="peer-endpoint")
        self.allowed_ips = _value_label(name="peer-allowed-ips")
        self.handshake = _value_label(name="peer-latest-handshake")
        self.transfer = _value_label(name="peer-transfer")
        self.rates = _value_label(name="peer-rates")
        self.graph = ThroughputGraph()
        form.addRow(self.tr("Public key:"), self.key)
        form.addRow(self.tr("Endpoint:"), self.endpoint)
        form.addRow(self.tr("Allowed IPs:"), self.allowed_ips)
        form.addRow(self.tr("Latest handshake:"), self.handshake)
        form.addRow(self.tr("Transfer:"), self.transfer)
        form.addRow(self.tr("Rate:"), self.rates)
        form.addRow(self.graph)

    def update_from(
        self, peer_cfg: Any, live: PeerSnapshot | None, samples: list[tuple[float, int, int]], now: float
    ) -> None:
        """Show the configured peer *peer_cfg* with its *live* status (None when the tunnel is down)."""
        endpoint = endpoint_text(live, getattr(peer_cfg, "endpoint", None), now)
        self.endpoint.setText(endpoint or self.tr("(none)"))
        allowed = live.allowed_ips if live is not None else getattr(peer_cfg, "allowed_ips", ())
        self.allowed_ips.setText(_join(allowed) or self.tr("(none)"))
        if live is None:
            self.handshake.setText("—")
            self.transfer.setText("—")
            self.rates.setText("—")
            self.graph.set_samples([])
            return
        self.handshake.setText(units.ago(live.latest_handshake, now))
        self.transfer.setText(
            self.tr("{rx} received, {tx} sent").format(
                rx=units.size(live.rx_bytes), tx=units.size(live.tx_bytes)
            )
        )
        points = rates(samples[-2:])
        rx, tx = (points[-1][1], points[-1][2]) if points else (0.0, 0.0)
        self.rates.setText(self.tr("↓ {rx}   ↑ {tx}").format(rx=units.rate(rx), tx=units.rate(tx)))
        self.graph.set_samples(samples)


class StatusPane(QScrollArea):
    """Interface and peers of one tunnel, refreshed from the controller."""

    def __init__(self, controller: TunnelController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._controller = controller
        self._name: str | None = None
        self.setWidgetResizable(True)
        body = QWidget()
        self._layout = QVBoxLayout(body)
        self.interface = QGroupBox(self.tr("Interface"))
        form = QFormLayout(self.interface)
        self.state = _value_label(name="interface-state")
        self.public_key = KeyField("interface-public-key")
        self.addresses = _value_label(name="interface-addresses")
        self.dns = _value_label(name="interface-dns")
        self.listen_port = _value_label(name="interface-listen-port")
        self.mtu = _value_label(name="interface-mtu")
        form.addRow(self.tr("Status:"), self.state)
        form.addRow(self.tr("Public key:"), self.public_key)
        form.addRow(self.tr("Addresses:"), self.addresses)
        form.addRow(self.tr("DNS:"), self.dns)
        form.addRow(self.tr("Listen port:"), self.listen_port)
        form.addRow(self.tr("MTU:"), self.mtu)
        self._layout.addWidget(self.interface)
        self._peers: dict[str, PeerView] = {}
        self._peer_box = QVBoxLayout()
        self._layout.addLayout(self._peer_box)
        self._layout.addStretch(1)
        self.setWidget(body)
        controller.live.statusChanged.connect(self.refresh)
        controller.library.publicKeyFound.connect(self._key_found)

    def show_tunnel(self, name: str | None) -> None:
        """Show *name* (None: nothing)."""
        self._name = name
        for view in self._peers.values():
            view.setParent(None)
            view.deleteLater()
        self._peers.clear()
        if name is not None:
            self._controller.library.fetch_public_key(name)
        self.refresh()

    def _key_found(self, name: str) -> None:
        if name == self._name:
            self.refresh()

    def peer_view(self, public_key: str) -> PeerView | None:
        """The view of one peer (for tests and accessibility tools)."""
        return self._peers.get(public_key)

    def refresh(self) -> None:
        """Re-read config and live status."""
        name, c = self._name, self._controller
        self.interface.setEnabled(name is not None)
        if name is None:
            return
        cfg = c.library.config(name)
        iface = getattr(cfg, "interface", None)
        live = c.live.status(name)
        now = time.time()
        self.state.setText(health_text(c.live.health(name)))
        self.public_key.set_key(c.library.public_key(name))
        self.addresses.setText(_join(getattr(iface, "addresses", ())) or self.tr("(none)"))
        dns = [*getattr(iface, "dns", ()), *getattr(iface, "dns_search", ())]
        self.dns.setText(_join(dns) or self.tr("(none)"))
        port = (live.listen_port if live else None) or getattr(iface, "listen_port", None)
        self.listen_port.setText(str(port) if port else self.tr("automatic"))
        mtu = getattr(iface, "mtu", None)
        self.mtu.setText(str(mtu) if mtu else self.tr("automatic"))
        live_peers = {p.public_key: p for p in live.peers} if live else {}
        cfg_peers = {str(getattr(p, "public_key", "")): p for p in getattr(cfg, "peers", ())}
        keys = list(cfg_peers) + [k for k in live_peers if k not in cfg_peers]
        for key in [k for k in self._peers if k not in keys]:
            self._peers.pop(key).deleteLater()
        for key in keys:
            view = self._peers.get(key)
            if view is None:
                view = self._peers[key] = PeerView(key)
                self._peer_box.addWidget(view)
            view.update_from(cfg_peers.get(key), live_peers.get(key), c.live.history(name, key), now)
