"""What the helper reports about a tunnel, as frozen dataclasses: the typed boundary helper → client.

The helper builds these (``status``, ``diagnose``) and sends `to_wire` (the JSON keys the control
protocol has always had, plus ``counters`` per peer); `wgdesk.client` decodes the answer with
`from_wire`, which checks every field, so a malformed or hostile reply is one `SnapshotError` naming
the field at the client, never a ``KeyError`` deep in a window. The GUI, the tray and ``wgdeskctl``
read attributes.

`PeerCounters` are the engine's (`wgdesk.proto.changes`): what the doctor and the helper's diagnosis
reason over (`wgdesk.causes`). They are None when the engine did not report them (one that predates
them).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from wgdesk.proto.changes import COUNTER_FIELDS, PeerCounters

__all__ = [
    "Diagnosis",
    "PeerCounters",
    "PeerSnapshot",
    "SnapshotError",
    "TunnelSnapshot",
    "counters_from_wire",
    "counters_to_wire",
]

_MAX_TEXT = 64 * 1024


class SnapshotError(ValueError):
    """A helper reply that does not have the documented shape; the message names the field."""


def _text(obj: Mapping[str, Any], key: str, where: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or len(value) > _MAX_TEXT:
        raise SnapshotError(f"{where}.{key} must be a string, not {_kind(value)}")
    return value


def _optional_text(obj: Mapping[str, Any], key: str, where: str) -> str | None:
    return None if obj.get(key) is None else _text(obj, key, where)


def _count(obj: Mapping[str, Any], key: str, where: str, default: int | None = None) -> int:
    value: object = obj.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise SnapshotError(f"{where}.{key} must be a non-negative integer, not {_kind(value)}")
    return value


def _optional_count(obj: Mapping[str, Any], key: str, where: str) -> int | None:
    return None if obj.get(key) is None else _count(obj, key, where)


def _flag(obj: Mapping[str, Any], key: str, where: str, default: bool | None = None) -> bool:
    value = obj.get(key, default)
    if not isinstance(value, bool):
        raise SnapshotError(f"{where}.{key} must be true or false, not {_kind(value)}")
    return value


def _optional_time(obj: Mapping[str, Any], key: str, where: str) -> float | None:
    value: object = obj.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise SnapshotError(f"{where}.{key} must be a time in seconds or null, not {_kind(value)}")
    return value  # an int stays one: what the helper sent is sent on unchanged (wgdeskctl show --json)


def _texts(obj: Mapping[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = obj.get(key, [])
    if not isinstance(value, list):
        raise SnapshotError(f"{where}.{key} must be a list, not {_kind(value)}")
    for i, v in enumerate(value):
        if not isinstance(v, str) or len(v) > _MAX_TEXT:
            raise SnapshotError(f"{where}.{key}[{i}] must be a string, not {_kind(v)}")
    return tuple(value)


def _object(value: object, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise SnapshotError(f"{where} must be an object, not {_kind(value)}")
    return value


def _kind(value: object) -> str:
    return "null" if value is None else f"{type(value).__name__} {str(value)[:40]!r}"


def counters_to_wire(counters: PeerCounters) -> dict[str, Any]:
    """`PeerCounters` as a JSON object: the plain counts and ``dropped`` by reason."""
    out: dict[str, Any] = {name: getattr(counters, name) for name in COUNTER_FIELDS}
    out["dropped"] = dict(counters.dropped)
    return out


def counters_from_wire(value: object, where: str = "counters") -> PeerCounters | None:
    """The inverse of `counters_to_wire`; None stays None (no counters reported)."""
    if value is None:
        return None
    obj = _object(value, where)
    dropped = _object(obj.get("dropped", {}), f"{where}.dropped")
    drops = {}
    for reason in dropped:
        if not isinstance(reason, str) or len(reason) > 64:
            raise SnapshotError(f"{where}.dropped has a key that is not a reason: {_kind(reason)}")
        drops[reason] = _count(dropped, reason, f"{where}.dropped")
    return PeerCounters.of({name: _count(obj, name, where, 0) for name in COUNTER_FIELDS}, drops)


@dataclass(frozen=True)
class PeerSnapshot:
    """One peer of a running tunnel: keys as base64, ``latest_handshake`` in Unix seconds."""

    public_key: str
    endpoint: str | None
    allowed_ips: tuple[str, ...]
    latest_handshake: float | None
    rx_bytes: int
    tx_bytes: int
    persistent_keepalive: int = 0
    endpoint_host: str | None = None
    """The host name in the config's Endpoint, when it was a name (re-resolved by the helper)."""
    endpoint_resolved_at: float | None = None
    resolve_error: str | None = None
    """Why the name did not resolve the last time the helper tried, or None."""
    counters: PeerCounters | None = None

    def to_wire(self) -> dict[str, Any]:
        return {
            "public_key": self.public_key,
            "endpoint": self.endpoint,
            "allowed_ips": list(self.allowed_ips),
            "latest_handshake": self.latest_handshake,
            "rx_bytes": self.rx_bytes,
            "tx_bytes": self.tx_bytes,
            "persistent_keepalive": self.persistent_keepalive,
            "endpoint_host": self.endpoint_host,
            "endpoint_resolved_at": self.endpoint_resolved_at,
            "resolve_error": self.resolve_error,
            "counters": None if self.counters is None else counters_to_wire(self.counters),
        }

    @classmethod
    def from_wire(cls, value: object, where: str = "peer") -> PeerSnapshot:
        obj = _object(value, where)
        return cls(
            public_key=_text(obj, "public_key", where),
            endpoint=_optional_text(obj, "endpoint", where),
            allowed_ips=_texts(obj, "allowed_ips", where),
            latest_handshake=_optional_time(obj, "latest_handshake", where),
            rx_bytes=_count(obj, "rx_bytes", where, 0),
            tx_bytes=_count(obj, "tx_bytes", where, 0),
            persistent_keepalive=_count(obj, "persistent_keepalive", where, 0),
            endpoint_host=_optional_text(obj, "endpoint_host", where),
            endpoint_resolved_at=_optional_time(obj, "endpoint_resolved_at", where),
            resolve_error=_optional_text(obj, "resolve_error", where),
            counters=counters_from_wire(obj.get("counters"), f"{where}.counters"),
        )


@dataclass(frozen=True)
class TunnelSnapshot:
    """One tunnel the helper runs (or keeps blocking), as the ``status`` verb reports it."""

    name: str
    interface: str
    state: str
    owner: int
    full_tunnel: bool
    kill_switch: bool
    fwmark: int
    listen_port: int
    mtu: int | None
    bypass: bool
    include: bool
    since: float | None
    message: str | None
    warnings: tuple[str, ...] = ()
    peers: tuple[PeerSnapshot, ...] = ()

    def to_wire(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "interface": self.interface,
            "state": self.state,
            "owner": self.owner,
            "full_tunnel": self.full_tunnel,
            "kill_switch": self.kill_switch,
            "fwmark": self.fwmark,
            "listen_port": self.listen_port,
            "mtu": self.mtu,
            "bypass": self.bypass,
            "include": self.include,
            "since": self.since,
            "message": self.message,
            "warnings": list(self.warnings),
            "peers": [p.to_wire() for p in self.peers],
        }

    @classmethod
    def from_wire(cls, value: object, where: str = "tunnel") -> TunnelSnapshot:
        obj = _object(value, where)
        where = f"tunnel {obj.get('name')!r}" if isinstance(obj.get("name"), str) else where
        peers = obj.get("peers", [])
        if not isinstance(peers, list):
            raise SnapshotError(f"{where}.peers must be a list, not {_kind(peers)}")
        return cls(
            name=_text(obj, "name", where),
            interface=_text(obj, "interface", where),
            state=_text(obj, "state", where),
            owner=_count(obj, "owner", where, 0),
            full_tunnel=_flag(obj, "full_tunnel", where, False),
            kill_switch=_flag(obj, "kill_switch", where, False),
            fwmark=_count(obj, "fwmark", where, 0),
            listen_port=_count(obj, "listen_port", where, 0),
            mtu=_optional_count(obj, "mtu", where),
            bypass=_flag(obj, "bypass", where, False),
            include=_flag(obj, "include", where, False),
            since=_optional_time(obj, "since", where),
            message=_optional_text(obj, "message", where),
            warnings=_texts(obj, "warnings", where),
            peers=tuple(PeerSnapshot.from_wire(p, f"{where}.peers[{i}]") for i, p in enumerate(peers)),
        )


@dataclass(frozen=True)
class Diagnosis:
    """The ``diagnose`` answer: the tunnel, the helper's findings in words (its state, and the causes
    `wgdesk.causes` finds for each peer), and the tunnel's recent log."""

    tunnel: TunnelSnapshot
    findings: tuple[str, ...]
    logs: tuple[Mapping[str, Any], ...] = ()
    """Log records as the ``logs`` verb returns them (``time``, ``level``, ``source``, ``message``…)."""

    def to_wire(self) -> dict[str, Any]:
        return {"tunnel": self.tunnel.to_wire(), "findings": list(self.findings), "logs": list(self.logs)}

    def messages(self) -> list[str]:
        """The log lines' text, oldest first (a record without a text message counts as empty)."""
        return [m if isinstance(m := r.get("message"), str) else "" for r in self.logs]

    @classmethod
    def from_wire(cls, value: object) -> Diagnosis:
        obj = _object(value, "diagnosis")
        logs = obj.get("logs", [])
        if not isinstance(logs, list):
            raise SnapshotError(f"diagnosis.logs must be a list, not {_kind(logs)}")
        return cls(
            tunnel=TunnelSnapshot.from_wire(obj.get("tunnel")),
            findings=_texts(obj, "findings", "diagnosis"),
            logs=tuple(_object(r, f"diagnosis.logs[{i}]") for i, r in enumerate(logs)),
        )
