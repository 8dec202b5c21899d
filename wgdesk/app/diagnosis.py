"""The handshake doctor's rules: the evidence about a peer without a handshake, turned into likely causes.

No widgets: :class:`~wgdesk.app.doctor.DoctorPanel` shows what these functions find.

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

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QCoreApplication

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


def _clock(evidence: Mapping[str, Any]) -> Finding | None:
    if not evidence.get("clock_went_backwards"):
        return None
    return Finding(
        "clock",
        _tr("The clock went backwards"),
        _tr(
            "This computer's clock is earlier than the last handshake. The server rejects "
            "initiations whose timestamp is older than the newest it saw (replay protection). "
            "Correct the clock (enable network time); the server accepts again once the time "
            "passes the old one."
        ),
    )


def _no_endpoint(evidence: Mapping[str, Any]) -> Finding | None:
    if evidence.get("endpoint"):
        return None
    return Finding(
        "no-endpoint",
        _tr("This peer has no endpoint"),
        _tr(
            "Without an Endpoint, wgdesk cannot start a handshake; it waits for the peer to contact "
            "it. "
            "Add Endpoint = host:port to the [Peer] section if this is a server."
        ),
    )


def _resolve(evidence: Mapping[str, Any]) -> Finding | None:
    if not evidence.get("resolve_error"):
        return None
    endpoint = evidence.get("endpoint")
    return Finding(
        "resolve",
        _tr("The server name does not resolve"),
        _tr(
            "{endpoint} could not be resolved ({error}). Check the host name in Endpoint and that "
            "DNS works "
            "without the tunnel."
        ).format(endpoint=endpoint, error=evidence["resolve_error"]),
    )


def _no_route(evidence: Mapping[str, Any]) -> Finding | None:
    send_error = str(evidence.get("send_error") or "")
    if not (send_error and any(word in send_error.lower() for word in _UNREACHABLE)):
        return None
    endpoint = evidence.get("endpoint")
    return Finding(
        "no-route",
        _tr("There is no route to the server"),
        _tr(
            "Sending to {endpoint} failed: {error}. Check that this computer is online and that no "
            "other VPN "
            "takes the route."
        ).format(endpoint=endpoint, error=send_error),
    )


def _psk(evidence: Mapping[str, Any]) -> Finding | None:
    if not _int(evidence, "undecryptable_responses"):
        return None
    return Finding(
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


def _cookie(evidence: Mapping[str, Any]) -> Finding | None:
    if not _int(evidence, "cookie_replies_received") or _int(evidence, "responses_received"):
        return None
    return Finding(
        "cookie",
        _tr("The server is under load"),
        _tr(
            "The server answered with a cookie reply, which it does when it is busy. wgdesk retries "
            "with the "
            "cookie; if this persists, the server is overloaded or rate-limiting this address."
        ),
    )


def _silence(evidence: Mapping[str, Any]) -> Finding | None:
    sent = _int(evidence, "initiations_sent")
    answered = (
        _int(evidence, "responses_received")
        + _int(evidence, "cookie_replies_received")
        + _int(evidence, "undecryptable_responses")
    )
    if not sent or answered:
        return None
    endpoint = evidence.get("endpoint")
    return Finding(
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


def _idle() -> Finding:
    return Finding(
        "idle",
        _tr("No handshake was attempted yet"),
        _tr(
            "WireGuard starts a handshake when traffic is sent into the tunnel. Send some traffic "
            "(open a "
            "page, ping an address in AllowedIPs) or set PersistentKeepalive."
        ),
    )


Rule = Callable[[Mapping[str, Any]], Finding | None]

_DECISIVE: tuple[Rule, ...] = (_no_endpoint, _resolve, _no_route)
"""Checked in this order once there is no handshake; the first that applies is the whole answer (nothing
behind it can be judged)."""
_TOGETHER: tuple[Rule, ...] = (_psk, _cookie, _silence)
"""Checked after those; every one that applies is a finding."""


def explain_peer(evidence: Mapping[str, Any]) -> list[Finding]:
    """Findings for one peer's evidence (empty when it has a recent handshake and a sane clock): a clock
    that went backwards alone; else nothing after a handshake; else the first of `_DECISIVE` that
    applies, or all of `_TOGETHER` that apply, or "no handshake attempted yet" when none did and no
    initiation was sent."""
    clock = _clock(evidence)
    if clock is not None:
        return [clock]
    if evidence.get("latest_handshake"):
        return []
    for rule in _DECISIVE:
        finding = rule(evidence)
        if finding is not None:
            return [finding]
    findings = [f for rule in _TOGETHER if (f := rule(evidence)) is not None]
    if not findings and not _int(evidence, "initiations_sent"):
        findings.append(_idle())
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
