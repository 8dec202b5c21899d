"""The handshake doctor: turns the evidence about a peer without a handshake into a likely cause.

The helper's ``diagnose`` verb answers ``{"tunnel": STATUS, "findings": [text], "logs": [records]}``.
:func:`peer_evidence` reduces that to these fields per peer (engines that report them directly win):

=============================  ======================================================================
``endpoint``                   the endpoint in use (``host:port``), or null
``resolve_error``              why the endpoint's host name did not resolve, or null
``send_error``                 the last error sending datagrams (``"Network is unreachable"``…)
``initiations_sent``           handshake initiations sent ("Sending handshake initiation" log lines)
``responses_received``         handshakes completed as initiator
``cookie_replies_received``    cookie replies received (the server is under load)
``undecryptable_responses``    handshake messages from the endpoint that failed to authenticate
``clock_went_backwards``       the wall clock is earlier than the latest handshake already recorded
``latest_handshake``           Unix seconds, or null
=============================  ======================================================================

:func:`explain` returns findings, most likely cause first, each naming the cause in plain words and
saying what to check.

:func:`explain_mtu` puts the helper's ``probe_mtu`` answer (the "Test MTU" button) in plain words.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from html import escape
from typing import Any

from PySide6.QtCore import QCoreApplication, Qt, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from wgdesk.app.controller import TunnelController
from wgdesk.app.state import Health
from wgdesk.app.status import KeyField

_UNREACHABLE = (
    "unreachable",
    "no route",
    "network is down",
    "errno 101",
    "errno 113",
    "enetunreach",
    "ehostunreach",
)


def _tr(text: str) -> str:
    return QCoreApplication.translate("doctor", text)


@dataclass(frozen=True)
class Finding:
    """One likely cause."""

    code: str
    title: str
    detail: str


def _int(evidence: Mapping[str, Any], key: str) -> int:
    try:
        return int(evidence.get(key) or 0)
    except (TypeError, ValueError):
        return 0


def explain_peer(evidence: Mapping[str, Any]) -> list[Finding]:
    """Findings for one peer's evidence (empty when it has a recent handshake and a sane clock)."""
    findings: list[Finding] = []
    if evidence.get("clock_went_backwards"):
        findings.append(
            Finding(
                "clock",
                _tr("The clock went backwards"),
                _tr(
                    "This computer's clock is earlier than the last handshake. The server rejects "
                    "initiations whose timestamp is older than the newest it saw (replay protection). "
                    "Correct the clock (enable network time); the server accepts again once the time "
                    "passes the old one."
                ),
            )
        )
        return findings
    if evidence.get("latest_handshake"):
        return []
    endpoint = evidence.get("endpoint")
    if not endpoint:
        findings.append(
            Finding(
                "no-endpoint",
                _tr("This peer has no endpoint"),
                _tr(
                    "Without an Endpoint, wgdesk cannot start a handshake; it waits for the peer to contact "
                    "it. "
                    "Add Endpoint = host:port to the [Peer] section if this is a server."
                ),
            )
        )
        return findings
    if evidence.get("resolve_error"):
        findings.append(
            Finding(
                "resolve",
                _tr("The server name does not resolve"),
                _tr(
                    "{endpoint} could not be resolved ({error}). Check the host name in Endpoint and that "
                    "DNS works "
                    "without the tunnel."
                ).format(endpoint=endpoint, error=evidence["resolve_error"]),
            )
        )
        return findings
    send_error = str(evidence.get("send_error") or "")
    if send_error and any(word in send_error.lower() for word in _UNREACHABLE):
        findings.append(
            Finding(
                "no-route",
                _tr("There is no route to the server"),
                _tr(
                    "Sending to {endpoint} failed: {error}. Check that this computer is online and that no "
                    "other VPN "
                    "takes the route."
                ).format(endpoint=endpoint, error=send_error),
            )
        )
        return findings
    if _int(evidence, "undecryptable_responses"):
        findings.append(
            Finding(
                "psk",
                _tr("The server's answer cannot be decrypted"),
                _tr(
                    "The server replies, but its response fails to decrypt. The preshared key differs from "
                    "the "
                    "server's (or the server's PublicKey in this config is wrong). Compare PresharedKey on "
                    "both "
                    "sides."
                ),
            )
        )
    if _int(evidence, "cookie_replies_received") and not _int(evidence, "responses_received"):
        findings.append(
            Finding(
                "cookie",
                _tr("The server is under load"),
                _tr(
                    "The server answered with a cookie reply, which it does when it is busy. wgdesk retries "
                    "with the "
                    "cookie; if this persists, the server is overloaded or rate-limiting this address."
                ),
            )
        )
    sent = _int(evidence, "initiations_sent")
    answered = (
        _int(evidence, "responses_received")
        + _int(evidence, "cookie_replies_received")
        + _int(evidence, "undecryptable_responses")
    )
    if sent and not answered:
        findings.append(
            Finding(
                "silence",
                _tr("No reply at all from the server"),
                _tr(
                    "{sent} handshake initiations were sent to {endpoint} and none was answered. Either UDP "
                    "is "
                    "blocked on the way (firewall, hotel or office network), the port is wrong, the server "
                    "is down, "
                    "or the server does not know this tunnel's public key (shown below) — WireGuard stays "
                    "silent "
                    "towards unknown keys."
                ).format(sent=sent, endpoint=endpoint),
            )
        )
    if not sent and not findings:
        findings.append(
            Finding(
                "idle",
                _tr("No handshake was attempted yet"),
                _tr(
                    "WireGuard starts a handshake when traffic is sent into the tunnel. Send some traffic "
                    "(open a "
                    "page, ping an address in AllowedIPs) or set PersistentKeepalive."
                ),
            )
        )
    return findings


def _peer_tag(public_key: str) -> str:
    # the engine's short peer name, as in wireguard-go: first four and last four characters before "="
    return f"peer({public_key[:4]}…{public_key[-5:-1]})" if len(public_key) == 44 else public_key


def peer_evidence(diagnosis: Mapping[str, Any], now: float) -> list[dict[str, Any]]:
    """Evidence per peer from the helper's ``diagnose`` answer (see the module docstring)."""
    tunnel = diagnosis.get("tunnel") or {}
    records = [r for r in diagnosis.get("logs") or () if isinstance(r, Mapping)]
    messages = [str(r.get("message", "")) for r in records]
    send_errors = [m.split(":", 1)[-1].strip() for m in messages if "Failed to send" in m]
    resolve_errors = [m for m in messages if "resolve" in m.lower() and ("fail" in m.lower() or "not" in m)]
    out = []
    for peer in tunnel.get("peers") or ():
        if not isinstance(peer, Mapping):
            continue
        key = str(peer.get("public_key", ""))
        tag = _peer_tag(key)
        endpoint = peer.get("endpoint")
        mine = [m for m in messages if tag in m]
        from_endpoint = [m for m in messages if endpoint and f"from {endpoint}" in m]
        handshake = peer.get("latest_handshake")
        evidence: dict[str, Any] = {
            "endpoint": endpoint,
            "latest_handshake": handshake,
            "initiations_sent": sum("Sending handshake initiation" in m for m in mine),
            "responses_received": sum("received handshake response" in m for m in mine),
            "cookie_replies_received": sum("Received cookie response" in m for m in mine),
            "undecryptable_responses": sum("invalid_handshake" in m for m in from_endpoint),
            "send_error": send_errors[-1] if send_errors else None,
            "resolve_error": resolve_errors[-1] if resolve_errors else None,
            "clock_went_backwards": isinstance(handshake, int | float) and handshake > now + 1,
            "rx_bytes": peer.get("rx_bytes"),
            "tx_bytes": peer.get("tx_bytes"),
        }
        if not evidence["initiations_sent"] and not handshake and int(peer.get("rx_bytes") or 0) == 0:
            evidence["initiations_sent"] = int(peer.get("tx_bytes") or 0) // 148  # initiation size
        evidence.update({k: v for k, v in peer.items() if k in _ENGINE_FIELDS})
        out.append(evidence)
    return out


_ENGINE_FIELDS = frozenset(
    {
        "resolve_error",
        "send_error",
        "initiations_sent",
        "responses_received",
        "cookie_replies_received",
        "undecryptable_responses",
        "clock_went_backwards",
    }
)


def explain(diagnosis: Mapping[str, Any], now: float) -> list[Finding]:
    """Findings for a whole tunnel from the helper's ``diagnose`` answer; the helper's own findings last."""
    out: list[Finding] = []
    for evidence in peer_evidence(diagnosis, now):
        out.extend(f for f in explain_peer(evidence) if f not in out)
    for text in diagnosis.get("findings") or ():
        out.append(Finding("helper", _tr("The helper reports"), str(text)))
    return out


def explain_mtu(name: str, result: Mapping[str, Any]) -> tuple[str, int | None]:
    """Plain words for a ``probe_mtu`` answer, and the MTU to offer applying (None: nothing to apply)."""
    before = int(result.get("mtu_before") or 0)
    largest = result.get("largest_working")
    target = str(result.get("target", ""))
    took = _tr("{count} test packets, {seconds:.1f} s").format(
        count=len(result.get("probes") or ()), seconds=float(result.get("seconds") or 0)
    )
    if largest is None:
        return (
            _tr(
                "No answer from {target}, not even to small packets ({took}). Is there a handshake, and "
                "does {target} answer pings?"
            ).format(target=target, took=took),
            None,
        )
    largest = int(largest)
    if largest >= before:
        return (
            _tr(
                "Packets of the full {mtu} bytes cross the tunnel to {target}: the MTU is fine ({took})."
            ).format(mtu=before, target=target, took=took),
            None,
        )
    recommended = int(result.get("recommended_mtu") or largest)
    if result.get("applied"):
        return (
            _tr(
                "The MTU of {name} is now {mtu} until it disconnects ({took}). To keep it, set MTU = {mtu} "
                "in the tunnel's [Interface] section."
            ).format(name=name, mtu=recommended, took=took),
            None,
        )
    return (
        _tr(
            "Only packets up to {largest} bytes cross the tunnel, but its MTU is {mtu}: a router on the way "
            "drops bigger packets without saying so (an MTU black hole). Small requests work while pages "
            "and downloads stall. Lowering the MTU to {recommended} fixes it ({took})."
        ).format(largest=largest, mtu=before, recommended=recommended, took=took),
        recommended,
    )


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
            if name == self._name and isinstance(evidence, Mapping):
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
