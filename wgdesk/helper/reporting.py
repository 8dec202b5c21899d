"""What the helper reports of its tunnels: ``status``, ``diagnose``, ``logs`` and the ``handshake``
events, read from the tunnel table and each engine's UAPI.

Why apart from the manager: reporting changes nothing and takes no lock — it answers while another
member's tunnel comes up (a bring-up may hold the manager's lock for seconds) — and what it reports
(the shapes the control protocol and the doctor read) changes for reasons of its own.
"""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from wgdesk import causes
from wgdesk.helper.caller import ROOT, Caller
from wgdesk.helper.engine_process import EngineError, uapi_counters, uapi_get
from wgdesk.helper.errors import TunnelError
from wgdesk.snapshots import PeerSnapshot, TunnelSnapshot

if TYPE_CHECKING:
    from wgdesk.helper.events import Events
    from wgdesk.helper.logbook import LogBook
    from wgdesk.helper.state import Tunnel


def _hex_to_b64(text: str) -> str:
    try:
        return base64.b64encode(bytes.fromhex(text)).decode()
    except ValueError:
        return ""


class Reports:
    """The read-only verbs over the manager's tunnels, as ``caller`` may see them."""

    def __init__(
        self,
        tunnels: Callable[[], list[Tunnel]],
        log: LogBook,
        events: Events,
        engine_counts: Callable[[], bool],
    ) -> None:
        self._snapshot = tunnels
        """The tunnels now, without the manager's lock (`TunnelManager.snapshot`)."""
        self._engine_counts = engine_counts
        """Whether the engine is wgdesk's, which serves per-peer counters (wireguard-go has none and
        would log every request for them as an invalid operation)."""
        self.log = log
        self.events = events

    def status(self, name: str | None = None, caller: Caller = ROOT) -> list[dict[str, Any]]:
        """The tunnels ``caller`` may see (a member: their own), as the ``status`` verb reports them.
        Takes no lock: it answers while another member's tunnel comes up."""
        tunnels = [t for t in self._snapshot() if caller.sees(t.owner)]
        if name is not None:
            tunnels = [t for t in tunnels if t.name == name]
            if not tunnels:
                raise TunnelError("not_found", f"no tunnel named {name} is up")
        return [self.describe(t, live=True) for t in tunnels]

    def logs(
        self, name: str | None = None, since: float | None = None, caller: Caller = ROOT
    ) -> list[dict[str, Any]]:
        """Log records ``caller`` may read (a member: those of their own tunnels and requests)."""
        return self.log.records(name, since, caller.reader)

    def diagnose(self, name: str, caller: Caller = ROOT) -> dict[str, Any]:
        """The tunnel's status, findings in words and recent log: the tunnel's own state first, then
        each peer's causes from the rules the GUI's doctor shares (`wgdesk.causes`), over the engine's
        counters."""
        info = self.status(name, caller)[0]
        logs = self.logs(name, None, caller)[-300:]
        tunnel = TunnelSnapshot.from_wire(info)
        findings: list[str] = []
        if tunnel.state == "blocked":
            findings.append(
                "the helper restarted after a crash and keeps the kill switch blocking; "
                f"bring the tunnel up again, or `wgdeskctl down {name}` to stop blocking"
            )
        elif tunnel.state == "failed":
            findings.append(f"the engine stopped: {tunnel.message}")
        messages = [str(r.get("message", "")) for r in logs]
        now = time.time()
        for peer in tunnel.peers:
            for cause in causes.explain_peer(causes.evidence(peer, messages, now)):
                findings.append(causes.peer_finding(peer.public_key, cause))
        return {"tunnel": info, "findings": findings, "logs": logs}

    def describe(self, t: Tunnel, live: bool) -> dict[str, Any]:
        peers: list[dict[str, Any]] = []
        message, listen_port = t.message, t.listen_port
        if live and t.engine is not None and t.engine.alive() and t.state == "up":
            try:
                device = uapi_get(t.ifname, timeout=3.0)
                counters = uapi_counters(t.ifname, timeout=3.0) if self._engine_counts() else None
                for p in device["peers"]:
                    p["counters"] = None if counters is None else counters.get(p["public_key"])
                peers = self._peer_status(t, device["peers"])
                listen_port = device.get("listen_port", t.listen_port)
            except (EngineError, ValueError, KeyError, TypeError) as e:
                # whatever this engine answers, it is this tunnel's problem only
                message = str(e) if isinstance(e, EngineError) else f"unreadable engine status: {e!r}"
        return TunnelSnapshot(
            name=t.name,
            interface=t.ifname,
            state=t.state,
            owner=t.owner,
            full_tunnel=t.full_tunnel,
            kill_switch=t.kill_switch,
            fwmark=t.fwmark,
            listen_port=listen_port,
            mtu=t.mtu,
            bypass=t.bypass,
            include=bool(t.include_mark),
            since=t.since,
            message=message,
            warnings=tuple(t.warnings),
            peers=tuple(PeerSnapshot.from_wire(p) for p in peers),
        ).to_wire()

    @staticmethod
    def _peer_status(t: Tunnel, peers: list[dict[str, Any]]) -> list[dict[str, Any]]:
        out = []
        for p in peers:
            sec = int(p.get("last_handshake_time_sec", 0))
            nsec = int(p.get("last_handshake_time_nsec", 0))
            name = t.names.get(bytes.fromhex(p["public_key"]))
            peer = PeerSnapshot(
                public_key=_hex_to_b64(p["public_key"]),
                endpoint=p["endpoint"],
                allowed_ips=tuple(p["allowed_ips"]),
                latest_handshake=sec if sec or nsec else None,
                rx_bytes=int(p.get("rx_bytes", 0)),
                tx_bytes=int(p.get("tx_bytes", 0)),
                persistent_keepalive=int(p.get("persistent_keepalive_interval", 0)),
                endpoint_host=name.host if name else None,
                endpoint_resolved_at=name.resolved_at if name else None,
                resolve_error=name.error if name else None,
                counters=p.get("counters"),
            )
            out.append(peer.to_wire())
        return out

    def monitor(self, stop: threading.Event, interval: float = 1.0) -> None:
        """Publish ``handshake`` events (per peer, when its latest handshake changes) while anyone
        is subscribed, to those who may see the tunnel. Runs on its own thread until ``stop`` is set."""
        seen: dict[tuple[str, str], int | None] = {}
        while not stop.wait(interval):
            if not self.events.count:
                continue
            try:
                tunnels = self.status()
            except Exception as e:
                self.log.warning(None, f"status monitor: {e}")
                continue
            for t in tunnels:
                for p in t["peers"]:
                    key = (t["name"], p["public_key"])
                    if p["latest_handshake"] is not None and seen.get(key) != p["latest_handshake"]:
                        self.events.publish(
                            {
                                "event": "handshake",
                                "tunnel": t["name"],
                                "peer": p["public_key"],
                                "latest_handshake": p["latest_handshake"],
                                "endpoint": p["endpoint"],
                            },
                            t["owner"],
                        )
                    seen[key] = p["latest_handshake"]
