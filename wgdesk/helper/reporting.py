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

from wgdesk.helper.caller import ROOT, Caller
from wgdesk.helper.engine_process import EngineError, uapi_get
from wgdesk.helper.errors import TunnelError

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

    def __init__(self, tunnels: Callable[[], list[Tunnel]], log: LogBook, events: Events) -> None:
        self._snapshot = tunnels
        """The tunnels now, without the manager's lock (`TunnelManager.snapshot`)."""
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
        info = self.status(name, caller)[0]
        findings: list[str] = []
        if info["state"] == "blocked":
            findings.append(
                "the helper restarted after a crash and keeps the kill switch blocking; "
                f"bring the tunnel up again, or `wgdeskctl down {name}` to stop blocking"
            )
        elif info["state"] == "failed":
            findings.append(f"the engine stopped: {info.get('message')}")
        for p in info["peers"]:
            if p.get("resolve_error"):
                findings.append(
                    f"peer {p['public_key'][:8]}…: its endpoint name {p['endpoint_host']} does not resolve "
                    f"any more ({p['resolve_error']}); still sending to {p['endpoint']}, the address it "
                    "had before — check the name and that DNS works without the tunnel"
                )
            if p["endpoint"] is None:
                findings.append(
                    f"peer {p['public_key'][:8]}… has no endpoint: it can only answer, "
                    "never start a handshake"
                )
            elif p["latest_handshake"] is None and p["tx_bytes"] > 0 and p["rx_bytes"] == 0:
                findings.append(
                    f"peer {p['public_key'][:8]}…: handshake initiations are sent to "
                    f"{p['endpoint']} but nothing comes back — the endpoint or port is wrong, a "
                    "firewall drops UDP, or the peer does not have our public key"
                )
            elif p["latest_handshake"] is not None and time.time() - p["latest_handshake"] > 180:
                findings.append(f"peer {p['public_key'][:8]}…: last handshake is older than 3 minutes")
        return {"tunnel": info, "findings": findings, "logs": self.logs(name, None, caller)[-300:]}

    def describe(self, t: Tunnel, live: bool) -> dict[str, Any]:
        info: dict[str, Any] = {
            "name": t.name,
            "interface": t.ifname,
            "state": t.state,
            "owner": t.owner,
            "full_tunnel": t.full_tunnel,
            "kill_switch": t.kill_switch,
            "fwmark": t.fwmark,
            "listen_port": t.listen_port,
            "mtu": t.mtu,
            "bypass": t.bypass,
            "include": bool(t.include_mark),
            "since": t.since,
            "message": t.message,
            "warnings": list(t.warnings),
            "peers": [],
        }
        if live and t.engine is not None and t.engine.alive() and t.state == "up":
            try:
                device = uapi_get(t.ifname, timeout=3.0)
                info["peers"] = self._peer_status(t, device["peers"])
            except (EngineError, ValueError, KeyError, TypeError) as e:
                # whatever this engine answers, it is this tunnel's problem only
                info["message"] = str(e) if isinstance(e, EngineError) else f"unreadable engine status: {e!r}"
                return info
            info["listen_port"] = device.get("listen_port", t.listen_port)
        return info

    @staticmethod
    def _peer_status(t: Tunnel, peers: list[dict[str, Any]]) -> list[dict[str, Any]]:
        out = []
        for p in peers:
            sec = int(p.get("last_handshake_time_sec", 0))
            nsec = int(p.get("last_handshake_time_nsec", 0))
            name = t.names.get(bytes.fromhex(p["public_key"]))
            out.append(
                {
                    "public_key": _hex_to_b64(p["public_key"]),
                    "endpoint": p["endpoint"],
                    "allowed_ips": p["allowed_ips"],
                    "latest_handshake": sec if sec or nsec else None,
                    "rx_bytes": int(p.get("rx_bytes", 0)),
                    "tx_bytes": int(p.get("tx_bytes", 0)),
                    "persistent_keepalive": int(p.get("persistent_keepalive_interval", 0)),
                    "endpoint_host": name.host if name else None,
                    "endpoint_resolved_at": name.resolved_at if name else None,
                    "resolve_error": name.error if name else None,
                }
            )
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
