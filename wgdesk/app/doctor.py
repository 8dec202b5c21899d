"""The handshake doctor panel: asks the helper for evidence about the shown tunnel, shows the likely causes
(:mod:`wgdesk.app.diagnosis`), and runs the MTU test."""

from __future__ import annotations

import time
from html import escape
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from wgdesk.app.controller import TunnelController
from wgdesk.app.diagnosis import Finding, explain, explain_mtu
from wgdesk.app.state import Health
from wgdesk.app.status import KeyField
from wgdesk.snapshots import Diagnosis


class DoctorPanel(QWidget):
    """Shows the findings for the selected tunnel, asked from the helper on a worker."""

    WAIT_SECONDS = 12.0  # Rekey-Timeout (5 s) + a retry before we call it a problem

    diagnosed = Signal(int)  # number of findings (0 after a tunnel change)

    def __init__(self, controller: TunnelController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._controller = controller
        self._name: str | None = None
        self._busy = False
        self._last_auto: float | None = None  # when maybe_run last asked (a retry waits as long again)
        layout = QVBoxLayout(self)
        intro = QLabel(
            self.tr(
                "When a tunnel stays without a handshake, the doctor reads the engine's evidence "
                "and names the likely cause."
            )
        )
        intro.setWordWrap(True)
        layout.addWidget(intro)
        self.run_button = QPushButton(self.tr("&Diagnose now"))
        self.run_button.setObjectName("doctor-run")
        self.run_button.clicked.connect(self.run)
        layout.addWidget(self.run_button, 0, Qt.AlignmentFlag.AlignLeft)
        self.result = QLabel()
        self.result.setObjectName("doctor-result")
        self.result.setWordWrap(True)
        self.result.setTextFormat(Qt.TextFormat.RichText)
        self.result.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.result)
        layout.addWidget(QLabel(self.tr("This tunnel's public key (the server must list it as a peer):")))
        self.public_key = KeyField("doctor-public-key")
        layout.addWidget(self.public_key)
        mtu_intro = QLabel(
            self.tr(
                "Handshake fine, but some pages never load? A router on the way may drop large packets. "
                "The MTU test sends pings of several sizes through the connected tunnel."
            )
        )
        mtu_intro.setWordWrap(True)
        layout.addWidget(mtu_intro)
        row = QHBoxLayout()
        self.mtu_button = QPushButton(self.tr("Test &MTU"))
        self.mtu_button.setObjectName("doctor-mtu")
        self.mtu_button.clicked.connect(lambda: self.test_mtu(apply=False))
        row.addWidget(self.mtu_button)
        self.mtu_apply = QPushButton()
        self.mtu_apply.setObjectName("doctor-mtu-apply")
        self.mtu_apply.clicked.connect(lambda: self.test_mtu(apply=True))
        self.mtu_apply.hide()
        row.addWidget(self.mtu_apply)
        row.addStretch(1)
        layout.addLayout(row)
        self.mtu_result = QLabel()
        self.mtu_result.setObjectName("doctor-mtu-result")
        self.mtu_result.setWordWrap(True)
        self.mtu_result.setTextFormat(Qt.TextFormat.PlainText)
        self.mtu_result.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.mtu_result)
        layout.addStretch(1)
        self.findings: list[Finding] = []
        self.mtu_answer: dict[str, Any] | None = None
        """The last ``probe_mtu`` answer for the shown tunnel."""
        self._mtu_busy = False

    def show_tunnel(self, name: str | None) -> None:
        """Switch to *name*; findings of the previous tunnel are dropped."""
        self._name = name
        self._last_auto = None
        self.findings = []
        self.result.setText("")
        self.mtu_answer = None
        self.mtu_result.setText("")
        self.mtu_apply.hide()
        self.diagnosed.emit(0)
        self.public_key.set_key(self._controller.library.public_key(name) if name else None)

    def run(self) -> None:
        """Ask the helper for evidence and explain it."""
        if self._name is None or self._busy:
            return
        self._busy = True
        name = self._name
        self.result.setText(self.tr("Asking the engine…"))

        def done(evidence: object) -> None:
            self._busy = False
            if name == self._name and isinstance(evidence, Diagnosis):
                self.show_findings(explain(evidence, time.time()))

        def failed(exc: object) -> None:
            self._busy = False
            # the label is rich text: the helper's message must not be read as markup
            self.result.setText(escape(self.tr("Diagnosis failed: {error}").format(error=exc)))

        self._controller.calls.submit(lambda c: c.diagnose(name), done, failed)

    def test_mtu(self, apply: bool = False) -> None:
        """Probe the path MTU of the shown tunnel on the controller's worker (with *apply*: and lower it)."""
        if self._name is None or self._mtu_busy:
            return
        self._mtu_busy = True
        name = self._name
        self.mtu_button.setEnabled(False)
        self.mtu_apply.setEnabled(False)
        self.mtu_result.setText(
            self.tr("Lowering the MTU…") if apply else self.tr("Testing packet sizes (up to 20 s)…")
        )

        def done(result: dict[str, Any]) -> None:
            self._finish_mtu()
            if name != self._name:
                return
            self.mtu_answer = result
            text, offer = explain_mtu(name, result)
            self.mtu_result.setText(text)
            if offer is None:
                self.mtu_apply.hide()
            else:
                self.mtu_apply.setText(self.tr("Apply MTU {mtu}").format(mtu=offer))
                self.mtu_apply.show()

        def failed(exc: BaseException) -> None:
            self._finish_mtu()
            if name != self._name:
                return
            self.mtu_apply.hide()
            if getattr(exc, "code", None) == "not_found":
                self.mtu_result.setText(
                    self.tr("Connect {name} first: the test needs the tunnel up.").format(name=name)
                )
            else:
                self.mtu_result.setText(self.tr("MTU test failed: {error}").format(error=exc))

        self._controller.mtu.probe(name, apply, done, failed)

    def _finish_mtu(self) -> None:
        self._mtu_busy = False
        self.mtu_button.setEnabled(True)
        self.mtu_apply.setEnabled(True)

    def show_findings(self, findings: list[Finding]) -> None:
        """Show *findings* (most likely cause first) and the tunnel's public key."""
        self.findings = findings
        self.diagnosed.emit(len(findings))
        self.public_key.set_key(self._controller.library.public_key(self._name) if self._name else None)
        if not findings:
            self.result.setText(self.tr("No problem found: the tunnel has a handshake."))
            return
        self.result.setText(
            "".join(f"<p><b>{escape(f.title)}</b><br>{escape(f.detail)}</p>" for f in findings)
        )

    def maybe_run(self, health: Health, waiting_since: float | None, now: float) -> None:
        """Run automatically once a tunnel has waited long enough for its first handshake; while that
        finds nothing (or fails), ask again after as long, not on every status tick."""
        if (
            health == Health.WAITING
            and waiting_since is not None
            and now - waiting_since > self.WAIT_SECONDS
            and not self.findings
            and not self._busy
            and (self._last_auto is None or now - self._last_auto > self.WAIT_SECONDS)
        ):
            self._last_auto = now
            self.run()
