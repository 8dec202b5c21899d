"""The handshake doctor's findings: the causes `wgdesk.causes` finds for each peer, translated.

No widgets: :class:`~wgdesk.app.doctor.DoctorPanel` shows what these functions find. The rules are not
here: the helper's ``diagnose`` and the doctor share them (`wgdesk.causes`), over the engine's per-peer
counters in the typed `wgdesk.snapshots.Diagnosis` the client returns.

:func:`explain_mtu` puts the helper's ``probe_mtu`` answer (the "Test MTU" button) in plain words.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QCoreApplication

from wgdesk.causes import PEER_FINDING_PREFIX, Cause, Evidence, evidence, explain_peer
from wgdesk.snapshots import Diagnosis


def _tr(text: str) -> str:
    return QCoreApplication.translate("doctor", text)


@dataclass(frozen=True)
class Finding:
    """One likely cause, in the user's language."""

    code: str
    title: str
    detail: str


def finding(cause: Cause) -> Finding:
    """`cause` with its templates translated, then filled in."""
    return Finding(cause.code, _tr(cause.title), _tr(cause.detail).format(**cause.params))


def peer_evidence(diagnosis: Diagnosis, now: float) -> list[Evidence]:
    """The evidence about each peer of the diagnosed tunnel (`wgdesk.causes.evidence`)."""
    messages = diagnosis.messages()
    return [evidence(peer, messages, now) for peer in diagnosis.tunnel.peers]


def explain(diagnosis: Diagnosis, now: float) -> list[Finding]:
    """Findings for a whole tunnel: each peer's causes, then what the helper reports about the tunnel
    itself (the helper's per-peer findings are the same causes, so they are not repeated)."""
    out: list[Finding] = []
    for e in peer_evidence(diagnosis, now):
        out.extend(f for f in map(finding, explain_peer(e)) if f not in out)
    for text in diagnosis.findings:
        if not text.startswith(PEER_FINDING_PREFIX):
            out.append(Finding("helper", _tr("The helper reports"), text))
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
