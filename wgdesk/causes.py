"""The likely causes of a peer that does not work, from what the engine counted: one rule set, shared.

The helper's ``diagnose`` (its findings in words, for ``wgdeskctl diagnose``) and the GUI's doctor
(`wgdesk.app.diagnosis`, which translates the same texts) both call `explain_peer` on the same
`Evidence`, so they cannot disagree. The evidence is data: the engine's per-peer counters
(`wgdesk.proto.changes.PeerCounters` — initiations sent, responses and cookie replies received, drops
by reason), never log text counted after the fact; why a host name does not resolve is the helper's
`PeerSnapshot.resolve_error`. Only the last error sending datagrams comes from the engine's log (it is
not a count, and the engine reports it nowhere else).

Rules are plain functions ``Evidence -> Cause | None``; texts are English templates (``{name}``
fields filled from `Cause.params`) so the GUI can translate them before filling them in.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from wgdesk.proto.constants import MESSAGE_INITIATION_SIZE, REJECT_AFTER_TIME
from wgdesk.proto.events import DropReason
from wgdesk.snapshots import PeerSnapshot

__all__ = ["PEER_FINDING_PREFIX", "Cause", "Evidence", "evidence", "explain_peer", "peer_finding"]

PEER_FINDING_PREFIX = "peer "
"""How the helper's per-peer findings start; the GUI doctor finds the same causes itself and skips them."""

_UNREACHABLE = (
    "unreachable",
    "no route",
    "network is down",
    "errno 101",
    "errno 113",
    "enetunreach",
    "ehostunreach",
)


@dataclass(frozen=True)
class Evidence:
    """What is known about one peer. Counts are the engine's; with an engine that does not report
    counters, `initiations_sent` is estimated from the bytes sent while nothing came back (an
    initiation is 148 bytes) and the other counts are 0."""

    endpoint: str | None
    latest_handshake: float | None
    clock_went_backwards: bool = False
    endpoint_host: str | None = None
    resolve_error: str | None = None
    send_error: str | None = None
    initiations_sent: int = 0
    responses_received: int = 0
    cookie_replies_received: int = 0
    dropped: Mapping[str, int] = field(default_factory=dict)
    handshake_age: float | None = None
    """Seconds since the latest handshake, or None."""

    def drops(self, reason: DropReason) -> int:
        return int(self.dropped.get(reason, 0))


@dataclass(frozen=True)
class Cause:
    """One likely cause: a stable `code`, and English `title`/`detail` templates with their fields."""

    code: str
    title: str
    detail: str
    params: Mapping[str, object] = field(default_factory=dict)

    def text(self) -> str:
        """Title and detail filled in, in English (the helper's wording)."""
        return f"{self.title}: {self.detail.format(**self.params)}"


def peer_finding(public_key: str, cause: Cause) -> str:
    """One of the helper's ``diagnose`` findings: ``peer ABCD1234…: Title: detail``."""
    return f"{PEER_FINDING_PREFIX}{public_key[:8]}…: {cause.text()}"


def evidence(peer: PeerSnapshot, log_messages: Iterable[str], now: float) -> Evidence:
    """The evidence about `peer` from its snapshot, the tunnel's log lines (oldest first) and `now`
    (Unix seconds)."""
    send_errors = [m.split(":", 1)[-1].strip() for m in log_messages if "Failed to send" in m]
    handshake = peer.latest_handshake
    c = peer.counters
    unanswered = handshake is None and peer.rx_bytes == 0
    estimated = peer.tx_bytes // MESSAGE_INITIATION_SIZE if unanswered else 0
    return Evidence(
        endpoint=peer.endpoint,
        latest_handshake=handshake,
        clock_went_backwards=handshake is not None and handshake > now + 1,
        endpoint_host=peer.endpoint_host,
        resolve_error=peer.resolve_error,
        send_error=send_errors[-1] if send_errors else None,
        initiations_sent=estimated if c is None else c.initiations_sent,
        responses_received=0 if c is None else c.responses_received,
        cookie_replies_received=0 if c is None else c.cookie_replies_received,
        dropped={} if c is None else dict(c.dropped),
        handshake_age=None if handshake is None else now - handshake,
    )


# --- the rules -----------------------------------------------------------------------------------------


def _clock(e: Evidence) -> Cause | None:
    if not e.clock_went_backwards:
        return None
    return Cause(
        "clock",
        "The clock went backwards",
        "This computer's clock is earlier than the last handshake. The server rejects initiations whose "
        "timestamp is older than the newest it saw (replay protection). Correct the clock (enable network "
        "time); the server accepts again once the time passes the old one.",
    )


def _resolve(e: Evidence) -> Cause | None:
    if not e.resolve_error:
        return None
    params = {"host": e.endpoint_host or e.endpoint, "error": e.resolve_error, "endpoint": e.endpoint}
    still = ""
    if e.endpoint_host and e.endpoint:
        still = " still sending to {endpoint}, the address it had before;"
    return Cause(
        "resolve",
        "The server name does not resolve",
        "The endpoint name {host} does not resolve any more ({error});" + still + " check the host name in "
        "Endpoint and that DNS works without the tunnel.",
        params,
    )


def _source_not_allowed(e: Evidence) -> Cause | None:
    dropped = e.drops(DropReason.SOURCE_NOT_ALLOWED)
    if not dropped:
        return None
    return Cause(
        "allowed-ips",
        "Packets from the server are dropped",
        "{count} packets arrived through the tunnel from addresses outside this peer's AllowedIPs and were "
        "dropped. The server sends from an address this config does not expect: compare AllowedIPs here "
        "with the server's Address.",
        {"count": dropped},
    )


def _stale(e: Evidence) -> Cause | None:
    if e.handshake_age is None or e.handshake_age <= REJECT_AFTER_TIME:
        return None
    return Cause(
        "stale",
        "The last handshake is old",
        "The last handshake was {minutes} minutes ago; sessions expire after 3 minutes, so nothing is "
        "exchanged now. Send traffic to start a new one; if none follows, see the causes below.",
        {"minutes": int(e.handshake_age // 60)},
    )


def _no_endpoint(e: Evidence) -> Cause | None:
    if e.endpoint:
        return None
    return Cause(
        "no-endpoint",
        "This peer has no endpoint",
        "Without an Endpoint, wgdesk cannot start a handshake; it waits for the peer to contact it. Add "
        "Endpoint = host:port to the [Peer] section if this is a server.",
    )


def _no_route(e: Evidence) -> Cause | None:
    error = e.send_error or ""
    if not (error and any(word in error.lower() for word in _UNREACHABLE)):
        return None
    return Cause(
        "no-route",
        "There is no route to the server",
        "Sending to {endpoint} failed: {error}. Check that this computer is online and that no other VPN "
        "takes the route.",
        {"endpoint": e.endpoint, "error": error},
    )


def _psk(e: Evidence) -> Cause | None:
    if not e.drops(DropReason.INVALID_HANDSHAKE):
        return None
    return Cause(
        "psk",
        "The server's answer cannot be decrypted",
        "The server replies, but its response fails to decrypt. The preshared key differs from the server's "
        "(or the server's PublicKey in this config is wrong). Compare PresharedKey on both sides.",
    )


def _other_key(e: Evidence) -> Cause | None:
    if not e.drops(DropReason.INVALID_MAC1):
        return None
    return Cause(
        "their-key",
        "The server expects another public key",
        "Handshakes from {endpoint} are addressed to a different public key than this tunnel's: the server "
        "has another PublicKey for this computer. Give the server this tunnel's public key (shown below).",
        {"endpoint": e.endpoint},
    )


def _cookie(e: Evidence) -> Cause | None:
    if not e.cookie_replies_received or e.responses_received:
        return None
    return Cause(
        "cookie",
        "The server is under load",
        "The server answered with a cookie reply, which it does when it is busy. wgdesk retries with the "
        "cookie; if this persists, the server is overloaded or rate-limiting this address.",
    )


def _silence(e: Evidence) -> Cause | None:
    answered = (
        e.responses_received
        + e.cookie_replies_received
        + e.drops(DropReason.INVALID_HANDSHAKE)
        + e.drops(DropReason.INVALID_MAC1)
    )
    if not e.initiations_sent or answered:
        return None
    return Cause(
        "silence",
        "No reply at all from the server",
        "{sent} handshake initiations were sent to {endpoint} but nothing comes back. Either UDP is blocked "
        "on the way (firewall, hotel or office network), the port is wrong, the server is down, or the "
        "server does not know this tunnel's public key (shown below) — WireGuard stays silent towards "
        "unknown keys.",
        {"sent": e.initiations_sent, "endpoint": e.endpoint},
    )


def _idle() -> Cause:
    return Cause(
        "idle",
        "No handshake was attempted yet",
        "WireGuard starts a handshake when traffic is sent into the tunnel. Send some traffic (open a page, "
        "ping an address in AllowedIPs) or set PersistentKeepalive.",
    )


Rule = Callable[[Evidence], Cause | None]

_ALWAYS: tuple[Rule, ...] = (_resolve, _source_not_allowed)
"""Apply with or without a handshake."""
_DECISIVE: tuple[Rule, ...] = (_no_endpoint, _no_route)
"""Without a handshake, in this order: the first that applies is the whole answer (nothing behind it can
be judged)."""
_TOGETHER: tuple[Rule, ...] = (_psk, _other_key, _cookie, _silence)
"""Without a handshake, after those: every one that applies."""


def explain_peer(e: Evidence) -> list[Cause]:
    """The causes for one peer, most likely first; empty when it works.

    A clock that went backwards is the whole answer. Otherwise a failing name and dropped packets always
    count; with a handshake, only an old one is added; without, a failing name is decisive, then the first
    of `_DECISIVE`, else every one of `_TOGETHER`, else "no handshake attempted yet" when no initiation
    was sent.
    """
    clock = _clock(e)
    if clock is not None:
        return [clock]
    found = [c for rule in _ALWAYS if (c := rule(e)) is not None]
    if e.latest_handshake:
        stale = _stale(e)
        return found + ([stale] if stale is not None else [])
    if any(c.code == "resolve" for c in found):
        return found
    for rule in _DECISIVE:
        cause = rule(e)
        if cause is not None:
            return [*found, cause]
    found += [c for rule in _TOGETHER if (c := rule(e)) is not None]
    if not found and not e.initiations_sent:
        found.append(_idle())
    return found
