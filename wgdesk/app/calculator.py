"""The "Exclude ranges…" dialog: one peer's AllowedIPs minus ranges the user names, previewed live."""

from __future__ import annotations

from ipaddress import ip_address

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QVBoxLayout,
    QWidget,
)

from wgdesk.config import (
    PRIVATE_LAN_RANGES,
    Config,
    ConfigError,
    allowed_ips,
    parse,
    parse_networks,
    with_allowed_ips,
)
from wgdesk.config.model import IPAddress, IPNetwork

__all__ = ["ExcludeRangesDialog"]


class ExcludeRangesDialog(QDialog):
    """Computes a peer's new AllowedIPs; after `accept()`, `new_text` is the config text with that peer's
    AllowedIPs rewritten (comments and every other line as they were).

    Without a /0 among the AllowedIPs, wg-quick (and the helper) route the ranges in the main table, so
    packets to a peer's endpoint inside them would enter the tunnel they carry: a literal endpoint address
    is excluded too unless the user unticks it.
    """

    def __init__(self, text: str, filename: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(self.tr("Exclude ranges from a peer's AllowedIPs"))
        self._text = text
        self._filename = filename
        self.config: Config = parse(text, filename)  # the caller opens the dialog for valid text only
        self.new_text: str | None = None
        self.result_networks: list[IPNetwork] = []
        form = QFormLayout()
        self.peer = QComboBox()
        self.peer.setObjectName("calculator-peer")
        for i, p in enumerate(self.config.peers, start=1):
            where = f", {p.endpoint}" if p.endpoint is not None else ""
            self.peer.addItem(
                self.tr("Peer {n} ({key}…{where})").format(n=i, key=p.public_key[:8], where=where)
            )
        if len(self.config.peers) > 1:
            form.addRow(self.tr("&Peer:"), self.peer)
        else:
            self.peer.hide()
        self.current = QLabel()
        self.current.setObjectName("calculator-current")
        self.current.setTextFormat(Qt.TextFormat.PlainText)
        self.current.setWordWrap(True)
        self.current.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        form.addRow(self.tr("Now routed:"), self.current)
        self.exclude = QLineEdit()
        self.exclude.setObjectName("calculator-exclude")
        self.exclude.setPlaceholderText(self.tr("e.g. 192.168.0.0/16, 203.0.113.0/24"))
        form.addRow(self.tr("&Exclude:"), self.exclude)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        self.private = QCheckBox(self.tr("Keep &local networks (private ranges) out of the tunnel"))
        self.private.setObjectName("calculator-private")
        self.private.setToolTip(", ".join(PRIVATE_LAN_RANGES))
        layout.addWidget(self.private)
        self.endpoint = QCheckBox()
        self.endpoint.setObjectName("calculator-endpoint")
        self.endpoint.setChecked(True)
        layout.addWidget(self.endpoint)
        layout.addWidget(QLabel(self.tr("New AllowedIPs:")))
        self.preview = QPlainTextEdit()
        self.preview.setObjectName("calculator-preview")
        self.preview.setReadOnly(True)
        self.preview.setAccessibleName(self.tr("New AllowedIPs"))
        layout.addWidget(self.preview, 1)
        self.message = QLabel()
        self.message.setObjectName("calculator-message")
        self.message.setTextFormat(Qt.TextFormat.PlainText)  # errors quote what was typed
        self.message.setWordWrap(True)
        layout.addWidget(self.message)
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        self.ok_button = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        self.ok_button.setObjectName("calculator-ok")
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout.addWidget(self.buttons)
        self.peer.currentIndexChanged.connect(self._peer_changed)
        self.exclude.textChanged.connect(self.update_preview)
        self.private.toggled.connect(self.update_preview)
        self.endpoint.toggled.connect(self.update_preview)
        self.resize(560, 360)
        self._peer_changed()

    def _endpoint_address(self) -> IPAddress | None:
        endpoint = self.config.peers[self.peer.currentIndex()].endpoint
        if endpoint is None:
            return None
        try:
            return ip_address(endpoint.host)
        except ValueError:
            return None

    def _peer_changed(self) -> None:
        peer = self.config.peers[self.peer.currentIndex()]
        self.current.setText(", ".join(str(n) for n in peer.allowed_ips) or self.tr("(nothing)"))
        address = self._endpoint_address()
        self.endpoint.setText(
            self.tr("Keep the endpoint {address} out of the tunnel").format(address=address)
            if address is not None
            else ""
        )
        self.update_preview()

    def update_preview(self) -> None:
        """Recompute the new AllowedIPs from the current inputs; OK only when they are valid and change
        something."""
        peer = self.config.peers[self.peer.currentIndex()]
        self.ok_button.setEnabled(False)
        self.result_networks = []
        try:
            exclude = parse_networks([self.exclude.text()], self.tr("Exclude"))
        except ConfigError as exc:
            self.preview.setPlainText("")
            self.message.setText(str(exc))
            self.message.setStyleSheet("color: #b91c1c;")
            return
        if self.private.isChecked():
            exclude += parse_networks(PRIVATE_LAN_RANGES)
        before = allowed_ips(peer.allowed_ips)
        result = allowed_ips(before, exclude)
        address = self._endpoint_address()
        loops = address is not None and any(address in n and n.prefixlen > 0 for n in result)
        self.endpoint.setVisible(loops)
        notes: list[str] = []
        if loops and self.endpoint.isChecked():
            result = allowed_ips(result, [str(address)])
        elif loops:
            notes.append(
                self.tr(
                    "Without a /0 route the tunnel's own packets to {address} would enter the tunnel."
                ).format(address=address)
            )
        elif address is None and peer.endpoint is not None and not any(n.prefixlen == 0 for n in result):
            notes.append(
                self.tr("The endpoint is a host name: if its address falls in these ranges, exclude it too.")
            )
        if any(n.prefixlen == 0 for n in before) and not any(n.prefixlen == 0 for n in result):
            notes.append(
                self.tr(
                    "Without 0.0.0.0/0 or ::/0 this is no longer a full tunnel: the Full tunnel switch and a "
                    "kill switch set to follow it no longer apply."
                )
            )
        self.result_networks = result
        self.preview.setPlainText(", ".join(str(n) for n in result))
        if not result:
            self.message.setText(self.tr("Nothing would be left to route through this peer."))
            self.message.setStyleSheet("color: #b91c1c;")
            return
        if result == before:
            notes.insert(0, self.tr("No change: none of these ranges is routed through this peer."))
        else:
            notes.insert(0, self.tr("{count} ranges.").format(count=len(result)))
            self.ok_button.setEnabled(True)
        self.message.setText(" ".join(notes))
        self.message.setStyleSheet("")

    def accept(self) -> None:
        """Rewrite the peer's AllowedIPs in the text (`new_text`) and close."""
        if not self.ok_button.isEnabled():
            return
        self.new_text = with_allowed_ips(
            self._text, self.peer.currentIndex() + 1, self.result_networks, self._filename
        )
        super().accept()
