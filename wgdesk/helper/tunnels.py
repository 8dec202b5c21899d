"""The tunnel manager: bring-up as one journalled transaction, `down`, status and crash recovery.

Bring-up order (each step journalled before it is made, see `journal`):
PreUp hooks → TUN → UAPI listener → UDP sockets → engine → UAPI configuration → kill switch →
addresses, MTU, link up → routes (and full-tunnel policy routing + nft) → DNS → PostUp hooks.
Any failure undoes the journal newest-first. The kill switch goes in before any route so there
is no window in which the tunnel's traffic could take the physical link.
"""

from __future__ import annotations

import base64
import dataclasses
import os
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from ipaddress import ip_network
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wgdesk import causes, platforms, uapi
from wgdesk.helper import bringup, conflicts
from wgdesk.helper import mtu as path_mtu
from wgdesk.helper.caller import ROOT, Caller
from wgdesk.helper.conflicts import Footprint
from wgdesk.helper.engine_process import (
    EngineError,
    EngineProcess,
    uapi_counters,
    uapi_get,
    uapi_request,
)
from wgdesk.helper.errors import TunnelError
from wgdesk.helper.events import Events
from wgdesk.helper.journal import Entry, Journal, find
from wgdesk.helper.live_update import PEER_FIELDS, PeerState, peer_diff, peer_states, restart_keys
from wgdesk.helper.lockdown import Lockdown, LockdownRefused, PauseRefused
from wgdesk.helper.logbook import HelperNotes, LogBook
from wgdesk.helper.planning import FIRST_FWMARK, Plan, Route, by_table, routes_for
from wgdesk.helper.records import (
    BypassOn,
    IncludeOn,
    MtuLowered,
    RoutesAdded,
    SettingChanged,
)
from wgdesk.helper.resolver import EndpointName, NamedTunnel, Reresolver, is_name, resolve
from wgdesk.helper.settings import PRIVATE_LAN_RANGES, Settings
from wgdesk.helper.state import REPLACEABLE, Tunnel, TunnelState
from wgdesk.platforms import PlatformError
from wgdesk.platforms.interface import (
    Bypass,
    Connection,
    FullTunnel,
    Include,
    KillSwitch,
    KillSwitchMember,
    PlatformOptions,
    SplitError,
)
from wgdesk.proto.changes import NO_KEY, DeviceChange, Endpoint, PeerChange
from wgdesk.snapshots import PeerSnapshot, TunnelSnapshot
from wgdesk.undo import UndoRecord

if TYPE_CHECKING:
    from wgdesk.config import Config


def _hex_to_b64(text: str) -> str:
    try:
        return base64.b64encode(bytes.fromhex(text)).decode()
    except ValueError:
        return ""


class TunnelManager:
    """All tunnels of this helper. Mutating operations are serialised by one lock."""

    def __init__(self, settings: Settings, state_dir: Path, logbook: LogBook, events: Events) -> None:
        self.settings = settings
        self.journal_dir = state_dir / "journal"
        self.journal_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.journal_dir, 0o700)
        self.log = logbook
        self.events = events
        self.tunnels: dict[str, Tunnel] = {}
        self.kill_switch: dict[str, KillSwitchMember] = {}
        self._lock = threading.RLock()
        self.lan: tuple[str, ...] = PRIVATE_LAN_RANGES if settings.allow_lan else ()
        self.reresolver = Reresolver(self, settings)
        """Re-resolves endpoint names of running tunnels; its thread is started by `main`."""
        self._probing: set[str] = set()
        """Tunnels with an MTU probe running (one at a time each)."""
        self.platform = platforms.create(
            PlatformOptions(
                state_dir=state_dir,
                persistent_dir=Path(settings.persistent_dir),
                dns_backend=settings.dns_backend,
                resolv_conf=settings.resolv_conf,
                split_exclude_cgroup=settings.split_tunnel_cgroup,
                split_include_cgroup=settings.split_tunnel_include_cgroup,
                cgroup_root=settings.split_tunnel_cgroup_root,
                allow_split_tunnel=settings.allow_split_tunnel,
            ),
            HelperNotes(logbook),
        )
        """The OS backend, configured by the administrator's settings."""
        self.split = self.platform.split
        """The groups of processes that bypass a full tunnel (`split_exclude`) or go only through a
        tunnel (`split_include`)."""
        self.lockdown = Lockdown(
            settings.lockdown, Path(settings.lockdown_file), logbook, settings.lockdown_pause_limit()
        )
        """Lockdown: the kill-switch table stays even with no tunnel up (`set_lockdown`)."""
        self._pause_timer: threading.Timer | None = None
        """Ends the running lockdown pause (`pause_lockdown`)."""
        self._firewall = threading.RLock()
        """Serialises the kill-switch table and lockdown (its pause included) on their own, so they
        never wait for the manager's lock (taken after it, never before)."""
        self._include_guard = False
        """The include guard (`SplitTunnel.guard_on`) is in place."""

    # --- public verbs ---------------------------------------------------------------------

    def up(
        self,
        name: str,
        text: str,
        full_tunnel: bool | None,
        kill_switch: bool | None,
        caller: Caller = ROOT,
    ) -> dict[str, Any]:
        # Parsing and endpoint names (DNS can take seconds) before the lock: a member's large or
        # slow config must not hold up everyone else's requests.
        cfg = self._parse(name, text)
        resolved = self._resolve_all(cfg)
        with self._lock:
            existing = self.tunnels.get(name)
            if existing is not None:
                self._authorise(existing, caller)
                if existing.state not in REPLACEABLE:
                    raise TunnelError(
                        "conflict",
                        f"tunnel {name} is already {existing.state}; run `wgdeskctl down {name}` first",
                    )
            plan = self._plan(name, cfg, resolved, full_tunnel, kill_switch, caller.uid)
            if existing is not None and existing.state == TunnelState.FAILED:
                # The engine died: clear its remains but keep blocking until the new bring-up is done.
                self._undo(existing, existing.journal, keep={"killswitch"})
                if any(e["kind"] == "killswitch" for e in existing.journal.entries):
                    existing.journal.keep_only({"killswitch"})
                    existing.move(TunnelState.BLOCKED)
                    existing.engine, existing.footprint = None, None
                else:
                    existing.journal.delete()
                    self.tunnels.pop(name)
                    existing = None
            if existing is not None:
                # A tunnel left blocking after a crash: keep its kill-switch entry until the new
                # bring-up has its own, so there is no unblocked moment.
                self.tunnels.pop(name)
            blocked_member = self.kill_switch.get(name)
            journal = Journal.create(
                self.journal_dir,
                name,
                {
                    "name": name,
                    "ifname": plan.ifname,
                    "owner": plan.owner,
                    "full_tunnel": plan.full_tunnel,
                    "kill_switch": plan.kill_switch,
                    "fwmark": plan.fwmark,
                    "state": TunnelState.STARTING,
                    "time": time.time(),
                },
                replacing=existing is not None,
            )
            tunnel = Tunnel(
                name,
                plan.ifname,
                TunnelState.STARTING,
                journal,
                plan.full_tunnel,
                plan.kill_switch,
                plan.fwmark,
                0,
                plan.routes,
                warnings=plan.warnings,
                owner=plan.owner,
                footprint=self._footprint(plan),
                allowed_count=plan.allowed_count,
            )
            # owned from the first moment: a `down` or `up` of another member meanwhile is refused
            self.log.own(name, plan.owner)
            self.tunnels[name] = tunnel
            self._publish(tunnel)
            try:
                self._bring_up(plan, tunnel)
            except Exception as e:
                if isinstance(e, OSError):
                    message = f"{e.strerror or e}" + (f": {e.filename}" if e.filename else "")
                else:
                    message = str(e) if isinstance(e, (TunnelError, EngineError, PlatformError)) else repr(e)
                self.log.error(name, f"bring-up failed, rolling back: {message}")
                tunnel.move(TunnelState.ROLLING_BACK)  # not STOPPING: PostDown hooks are for a real down
                self._undo(tunnel, tunnel.journal)
                tunnel.journal.delete()
                self.tunnels.pop(name, None)
                if existing is not None:
                    self.tunnels[name] = existing
                    self.log.own(name, existing.owner)
                    if blocked_member is not None:
                        self.kill_switch[name] = blocked_member
                if existing is not None or self.lockdown.enabled:
                    # the failed tunnel is no longer let out (a blocked one blocks again)
                    self._block_or_failsafe("after a failed bring-up")
                self._publish(
                    existing
                    or Tunnel(name, plan.ifname, TunnelState.DOWN, journal, message=message, owner=plan.owner)
                )
                if existing is None:
                    self.log.disown(name)
                code = e.code if isinstance(e, TunnelError) else "failed"
                raise TunnelError(code, f"could not bring {name} up: {message}") from e
            if existing is not None:
                journal.take_place_of(existing.journal)
            tunnel.move(TunnelState.UP)
            tunnel.since = time.time()
            tunnel.config = plan.config
            tunnel.names = plan.names
            tunnel.mtu = plan.mtu
            journal.update_header(state=TunnelState.UP, listen_port=tunnel.listen_port)
            self.log.info(
                name,
                f"up: interface {plan.ifname}, full tunnel {'on' if plan.full_tunnel else 'off'}, "
                f"kill switch {'on' if plan.kill_switch else 'off'}",
            )
            for w in plan.warnings:
                self.log.warning(name, w)
            self._publish(tunnel)
            if tunnel.names:
                self.reresolver.wake()
            if self.settings.probe_mtu_on_up:
                threading.Thread(
                    target=self._probe_after_up, args=(name, tunnel), daemon=True, name="mtu-probe"
                ).start()
            return self._describe(tunnel, live=False)

    def named(self) -> list[tuple[Tunnel, dict[bytes, EndpointName]]]:
        """For the `Reresolver` (`resolver.NamedTunnels`): running tunnels with endpoint names."""
        with self._lock:
            return [
                (t, dict(t.names))
                for t in self.tunnels.values()
                if t.state == TunnelState.UP and t.names and t.engine is not None
            ]

    @contextmanager
    def still_named(self, tunnel: NamedTunnel, key: bytes, name: EndpointName) -> Iterator[bool]:
        """For the `Reresolver`: under the lock, whether ``key`` of the running ``tunnel`` still has
        the endpoint ``name`` (a concurrent `update` or `down` wins)."""
        with self._lock:
            current = self.tunnels.get(tunnel.name)
            yield (current is tunnel and current.state == TunnelState.UP and current.names.get(key) is name)

    def _authorise(self, tunnel: Tunnel, caller: Caller) -> None:
        """Refuse (``denied``) a caller who may not change ``tunnel`` (call with the lock held: the
        owner is recorded before a bring-up starts, so no request slips in while it runs)."""
        if not caller.may_change(tunnel.owner):
            raise TunnelError(
                "denied",
                f"tunnel {tunnel.name} was brought up by another user (uid {tunnel.owner}); "
                "only that user or root may change it",
            )

    def down(self, name: str, caller: Caller = ROOT) -> dict[str, Any]:
        with self._lock:
            tunnel = self.tunnels.get(name)
            if tunnel is None:
                raise TunnelError("not_found", f"no tunnel named {name} is up")
            self._authorise(tunnel, caller)
            tunnel.move(TunnelState.STOPPING)
            self._publish(tunnel)
            self._run_hooks(tunnel, "PreDown")
            self._undo(tunnel, tunnel.journal)
            tunnel.journal.delete()
            self.tunnels.pop(name, None)
            if self.lockdown.enabled:
                self._apply_kill_switch()  # lockdown: the tunnel's exemptions go, the block stays
            self.log.info(name, "down")
            self.log.disown(name)
            tunnel.move(TunnelState.DOWN)
            tunnel.message = None
            self._publish(tunnel)
            try:
                self._sync_include_guard()
            except PlatformError as e:
                self.log.error(None, f"could not remove the include guard: {e}")
            return {"name": name, "state": "down"}

    def _running(
        self, name: str, otherwise: str, caller: Caller = ROOT
    ) -> tuple[Tunnel, EngineProcess, Config]:
        """Tunnel `name`, its engine and its config, when it is up, its engine alive and ``caller``
        may change it (call with the lock held); else `not_found` / `denied` / `conflict`, the
        latter ending with `otherwise`."""
        tunnel = self.tunnels.get(name)
        if tunnel is None:
            raise TunnelError("not_found", f"no tunnel named {name} is up")
        self._authorise(tunnel, caller)
        engine, config = tunnel.engine, tunnel.config
        if tunnel.state != "up" or config is None or engine is None or not engine.alive():
            raise TunnelError("conflict", f"tunnel {name} is {tunnel.state}, not up: {otherwise}")
        return tunnel, engine, config

    def update(self, name: str, text: str, caller: Caller = ROOT) -> dict[str, Any]:
        """Apply an edited config to the running tunnel ``name`` without restarting it.

        Only peers change live (added, removed, their PresharedKey, Endpoint, PersistentKeepalive
        and AllowedIPs, with the routes of AllowedIPs); anything else raises ``restart_required``
        with the keys in ``details["keys"]`` before anything is touched. Route changes are
        journalled like those of `up`, so `down` and crash recovery undo what exists.
        """
        cfg = self._parse(name, text)
        running = self.tunnels.get(name)  # a look without the lock, only to resolve names early
        before = running.config if running is not None else None
        early = self._resolve_all(cfg, unchanged_from=before)
        with self._lock:
            tunnel, engine, current = self._running(name, "bring it up again to use the new config", caller)
            keys = restart_keys(current, cfg)
            if keys:
                raise TunnelError(
                    "restart_required",
                    f"{', '.join(keys)} of {name} can only change when the tunnel reconnects; "
                    "nothing was changed (take it down and up again to apply the config)",
                    {"keys": keys},
                )
            old, new = peer_states(current.peers), peer_states(cfg.peers)
            table = (cfg.interface.table or "auto").lower()
            nets = list(dict.fromkeys(cfg.all_allowed_ips()))
            self._check_limits(tunnel.owner, name, len(nets))
            routes = routes_for(nets, table, tunnel.full_tunnel, tunnel.fwmark)
            footprint = tunnel.footprint
            if footprint is not None:
                footprint = dataclasses.replace(footprint, routes=tuple(r.dst for r in routes))
                self._check_conflicts(footprint)
            changes: list[PeerChange] = []
            added, removed, changed = [], [], []
            resolved: dict[bytes, str] = {}
            for key in old:
                if key not in new:
                    changes.append(PeerChange(public_key=key, remove=True))
                    removed.append(base64.b64encode(key).decode())
            for key, p in new.items():
                endpoint: Endpoint | None = None
                fields = peer_diff(old[key], p) if key in old else list(PEER_FIELDS)
                if not fields:
                    continue
                if "Endpoint" in fields and p.endpoint is not None:
                    ip = early.get(p.endpoint) or self._resolve(*p.endpoint)
                    endpoint = (ip, p.endpoint[1])
                    resolved[key] = endpoint[0]
                b64 = base64.b64encode(key).decode()
                if key not in old or (p.endpoint is None and old[key].endpoint is not None):
                    # new, or its endpoint removed (UAPI cannot unset one): (re)create the peer
                    if key in old:
                        changes.append(PeerChange(public_key=key, remove=True))
                    changes.append(
                        PeerChange(
                            public_key=key,
                            preshared_key=p.preshared_key,
                            endpoint=endpoint,
                            persistent_keepalive=p.keepalive,
                            replace_allowed_ips=True,
                            allowed_ips=p.allowed_order,
                        )
                    )
                else:
                    changes.append(
                        PeerChange(
                            public_key=key,
                            preshared_key=(p.preshared_key or NO_KEY) if "PresharedKey" in fields else None,
                            endpoint=endpoint,
                            persistent_keepalive=p.keepalive if "PersistentKeepalive" in fields else None,
                            replace_allowed_ips="AllowedIPs" in fields,
                            allowed_ips=p.allowed_order if "AllowedIPs" in fields else (),
                        )
                    )
                if key in old:
                    changed.append({"public_key": b64, "fields": fields})
                else:
                    added.append(b64)
            had, has = set(tunnel.routes), set(routes)
            new_routes = [r for r in routes if r not in had]
            old_routes = [r for r in tunnel.routes if r not in has]
            j = tunnel.journal
            done: list[Entry] = []
            try:
                # routes in before the engine accepts their networks, out after it stops: a
                # packet meanwhile is dropped by the engine, never sent around the tunnel
                done = self._add_routes(tunnel, new_routes)
                if changes:
                    uapi_request(
                        tunnel.ifname, uapi.format_set(DeviceChange(peers=tuple(changes))), alive=engine.alive
                    )
            except Exception as e:
                for entry in reversed(done):
                    try:
                        self._undo_entry(tunnel, entry)
                    except Exception as undo_error:
                        self.log.error(name, f"undo of routes in table {entry['table']} failed: {undo_error}")
                    else:
                        j.drop(entry)
                message = f"{e.strerror or e}" if isinstance(e, OSError) else str(e)
                self.log.error(name, f"live update failed, routes put back: {message}")
                raise TunnelError("failed", f"could not update {name}: {message}") from e
            for table_name, dsts in by_table(old_routes).items():
                self.platform.routing.delete_routes(tunnel.ifname, dsts, table_name)
                j.forget_routes(tunnel.ifname, table_name, {str(d) for d in dsts})
            tunnel.routes = routes
            tunnel.footprint = footprint
            tunnel.allowed_count = len(nets)
            tunnel.config = cfg
            tunnel.names = self._updated_names(tunnel.names, new, resolved)
            if tunnel.names:
                self.reresolver.wake()
            summary = [f"{len(added)} peer(s) added", f"{len(removed)} removed", f"{len(changed)} changed"]
            if new_routes or old_routes:
                summary.append(f"routes +{len(new_routes)} -{len(old_routes)}")
            self.log.info(name, "updated live: " + ", ".join(summary))
            return {
                "applied": "live",
                "peers": {"added": added, "removed": removed, "changed": changed},
                "routes": {
                    "added": [str(r.dst) for r in new_routes],
                    "removed": [str(r.dst) for r in old_routes],
                },
                "tunnel": self._describe(tunnel, live=True),
            }

    def _add_routes(self, tunnel: Tunnel, routes: Sequence[Route]) -> list[Entry]:
        """Journal and add ``routes`` through the tunnel, one netlink batch per table; returns the
        journal entries (each recorded before its routes go in)."""
        entries = []
        for table_name, dsts in by_table(routes).items():
            entries.append(
                tunnel.journal.add(RoutesAdded(tunnel.ifname, table_name, tuple(str(d) for d in dsts)))
            )
            self.platform.routing.add_routes(tunnel.ifname, dsts, table_name)
        return entries

    @staticmethod
    def _updated_names(
        names: dict[bytes, EndpointName], peers: dict[bytes, PeerState], resolved: dict[bytes, str]
    ) -> dict[bytes, EndpointName]:
        """The endpoint names after a live update: unchanged ones keep their state, changed ones
        start from the resolution the update just made, IP endpoints and removed peers drop out."""
        out: dict[bytes, EndpointName] = {}
        for key, p in peers.items():
            if p.endpoint is None or not is_name(p.endpoint[0]):
                continue
            host, port = p.endpoint
            if key in resolved:
                out[key] = EndpointName(host, port, resolved[key], time.time(), time.monotonic())
            elif key in names and (names[key].host, names[key].port) == (host, port):
                out[key] = names[key]
        return out

    def _snapshot(self) -> list[Tunnel]:
        """The tunnels now, without the manager's lock (a bring-up may hold it for seconds):
        copying a dict's values is one step under the GIL; a tunnel's fields are read as they are."""
        return list(self.tunnels.values())

    def status(self, name: str | None = None, caller: Caller = ROOT) -> list[dict[str, Any]]:
        """The tunnels ``caller`` may see (a member: their own), as the ``status`` verb reports them.
        Takes no lock: it answers while another member's tunnel comes up."""
        tunnels = [t for t in self._snapshot() if caller.sees(t.owner)]
        if name is not None:
            tunnels = [t for t in tunnels if t.name == name]
            if not tunnels:
                raise TunnelError("not_found", f"no tunnel named {name} is up")
        return [self._describe(t, live=True) for t in tunnels]

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

    def probe_mtu(
        self, name: str, target: str | None, apply: bool | None, caller: Caller = ROOT
    ) -> dict[str, Any]:
        """Find the largest packet that crosses the tunnel ``name`` (DF pings, see
        `wgdesk.helper.mtu`) and, with ``apply``, lower the interface MTU to it (journalled: `down`
        and recovery put the old one back).

        The probe runs without the manager's lock (it takes seconds); a second probe of the same
        tunnel meanwhile is ``conflict``.
        """
        with self._lock:
            tunnel, _, current = self._running(name, "nothing to probe", caller)
            if name in self._probing:
                raise TunnelError("conflict", f"an MTU probe of {name} is already running; wait for it")
            try:
                chosen = (
                    path_mtu.check_target(current, target)
                    if target is not None
                    else path_mtu.default_target(current)
                )
                before = path_mtu.link_mtu(tunnel.ifname)
            except path_mtu.MtuError as e:
                raise TunnelError("invalid", f"{name}: {e}") from e
            except (OSError, ValueError) as e:
                raise TunnelError("failed", f"cannot read the MTU of {tunnel.ifname}: {e}") from e
            self._probing.add(name)
        try:
            self.log.info(name, f"probing the path MTU to {chosen} (interface MTU {before})")
            result = path_mtu.probe(tunnel.ifname, chosen, before)
        finally:
            with self._lock:
                self._probing.discard(name)
        answer = result.as_dict()
        answer["applied"] = False
        if result.largest_working is None:
            self.log.warning(
                name,
                f"MTU probe: no echo from {chosen} even at {path_mtu.MIN_MTU} bytes "
                f"({len(result.probes)} probes, {result.seconds:.1f} s)",
            )
        else:
            self.log.info(
                name,
                f"MTU probe: {result.largest_working} bytes cross, {before} is the interface MTU "
                f"({len(result.probes)} probes, {result.seconds:.1f} s)",
            )
        recommended = result.recommended_mtu
        if apply and recommended is not None and recommended < before:
            with self._lock:
                if self.tunnels.get(name) is not tunnel or tunnel.state != "up":
                    raise TunnelError("conflict", f"tunnel {name} went down during the MTU probe")
                self._lower_mtu(tunnel, before, recommended)
            answer["applied"] = True
        answer["tunnel"] = self._describe(tunnel, live=True)
        return answer

    def _probe_after_up(self, name: str, tunnel: Tunnel) -> None:
        """`probe_mtu` with ``apply`` once after a bring-up (setting ``probe_mtu_on_up``); its first
        pings also start the handshake. Outcomes are logged, never raised."""
        if tunnel.config is None:
            return
        try:
            path_mtu.default_target(tunnel.config)
        except path_mtu.MtuError:
            self.log.info(
                name, "MTU probe after bring-up skipped: no DNS server or host route inside AllowedIPs"
            )
            return
        try:
            self.probe_mtu(name, None, True)
        except TunnelError as e:
            self.log.warning(name, f"MTU probe after bring-up: {e.message}")
        except Exception as e:  # a bug must not kill the helper
            self.log.error(name, f"MTU probe after bring-up failed: {e!r}")

    def _lower_mtu(self, tunnel: Tunnel, before: int, new: int) -> None:
        if not any(e["kind"] == "mtu" for e in tunnel.journal.entries):
            tunnel.journal.add(MtuLowered(tunnel.ifname, before))
        self.platform.tunnels.configure(tunnel.ifname, mtu=new)
        tunnel.mtu = new
        self.log.info(tunnel.name, f"MTU of {tunnel.ifname} lowered from {before} to {new}")

    # --- planning -------------------------------------------------------------------------

    def _parse(self, name: str, text: str) -> Config:
        from wgdesk.config import ConfigError, parse

        try:
            cfg = parse(text, f"{name}.conf")
        except ConfigError as e:
            raise TunnelError("invalid", str(e)) from e
        if not cfg.interface.private_key:
            raise TunnelError("invalid", f"{name}.conf: [Interface] has no PrivateKey")
        if not cfg.peers:
            raise TunnelError("invalid", f"{name}.conf: no [Peer] section")
        return cfg

    def _resolve_all(self, cfg: Config, unchanged_from: Config | None = None) -> dict[tuple[str, int], str]:
        """The address of every endpoint of ``cfg`` by (host, port) — those of ``unchanged_from``
        left out (a live update resolves only what changed). Called without the lock."""
        skip = set()
        if unchanged_from is not None:
            skip = {p.endpoint for p in peer_states(unchanged_from.peers).values()}
        out: dict[tuple[str, int], str] = {}
        for p in cfg.peers:
            if p.endpoint is None:
                continue
            key = (p.endpoint.host, p.endpoint.port)
            if key not in out and key not in skip:
                out[key] = self._resolve(*key)
        return out

    def _plan(
        self,
        name: str,
        cfg: Config,
        resolved: dict[tuple[str, int], str],
        full_tunnel: bool | None,
        kill_switch: bool | None,
        owner: int,
    ) -> Plan:
        """Everything `up` decides before it changes anything (call with the lock held)."""
        from wgdesk.config import key_bytes

        iface = cfg.interface
        assert iface.private_key is not None  # `_parse` refuses a config without one
        if self.platform.tunnels.exists(name):
            raise TunnelError("conflict", f"an interface named {name} already exists")
        warnings: list[str] = []
        table = (iface.table or "auto").lower()
        all_nets = list(dict.fromkeys(n for p in cfg.peers for n in p.allowed_ips))
        self._check_limits(owner, name, len(all_nets))
        defaults: set[int] = {n.version for n in all_nets if n.prefixlen == 0}
        if full_tunnel is True:
            if not defaults:
                raise TunnelError("invalid", "full tunnel needs a peer with AllowedIPs 0.0.0.0/0 and/or ::/0")
            if table != "auto":
                raise TunnelError(
                    "invalid", f"full tunnel needs Table = auto (this config has Table = {iface.table})"
                )
        full = bool(defaults) and table == "auto" and full_tunnel is not False
        if defaults and full_tunnel is False:
            warnings.append(
                "full tunnel is off: 0.0.0.0/0 and ::/0 are accepted from the peer but not routed"
            )
        fwmark = iface.fwmark or self._free_fwmark(name)
        routes = routes_for(all_nets, table, full, fwmark)
        if kill_switch is None:
            mode = self.settings.kill_switch
            kill_switch = mode == "always" or (mode == "full-tunnel" and full)
        peers = []
        endpoint_ips: list[str] = []
        names: dict[bytes, EndpointName] = {}
        for p in cfg.peers:
            peer: dict[str, Any] = {
                "public_key": p.public_key,
                "preshared_key": p.preshared_key,
                "allowed_ips": list(p.allowed_ips),
                "keepalive": p.persistent_keepalive,
                "endpoint": None,
            }
            if p.endpoint is not None:
                ip = resolved[(p.endpoint.host, p.endpoint.port)]
                peer["endpoint"] = (ip, p.endpoint.port)
                endpoint_ips.append(ip)
                # as _peer_states merges a repeated [Peer]: the last Endpoint given wins
                key = key_bytes(p.public_key)
                names.pop(key, None)
                if is_name(p.endpoint.host):
                    names[key] = EndpointName(
                        p.endpoint.host, p.endpoint.port, ip, time.time(), time.monotonic()
                    )
            peers.append(peer)
        endpoint_ips = list(dict.fromkeys(endpoint_ips))
        mtu = iface.mtu or self._auto_mtu(endpoint_ips)
        hooks = dict(iface.hooks)
        if hooks and not self.settings.allow_scripts:
            warnings.append(
                f"hooks not run ({', '.join(hooks)}): allow_scripts is off in /etc/wgdesk/helper.toml"
            )
            hooks = {}
        if iface.save_config:
            warnings.append("SaveConfig is ignored by wgdesk")
        dns_servers = [str(a) for a in iface.dns]
        if dns_servers and self.platform.dns.exclusive:
            for other in self.tunnels.values():
                if other.dns_file and other.name != name:
                    raise TunnelError(
                        "conflict",
                        f"tunnel {other.name} already sets DNS through "
                        f"{self.settings.resolv_conf}; only one tunnel can",
                    )
        plan = Plan(
            name,
            name,
            key_bytes(iface.private_key),
            peers,
            [str(a) for a in iface.addresses],
            mtu,
            routes,
            full,
            defaults if full else set(),
            kill_switch,
            fwmark,
            iface.listen_port or 0,
            dns_servers,
            list(iface.dns_search),
            hooks,
            warnings,
            cfg,
            names,
            owner=owner,
            table=table,
            endpoint_ips=endpoint_ips,
            allowed_count=len(all_nets),
        )
        if defaults and not full and table == "auto":  # Table = off/N: the user routes, not us
            plan.include_families = set(defaults)
        self._check_conflicts(self._footprint(plan))
        if owner != 0:
            self._check_tables(owner, table, iface.fwmark if full else None)
        return plan

    def _check_limits(self, owner: int, name: str, allowed: int) -> None:
        """Refuse (``limit``) a member's tunnel beyond `max_tunnels_per_user`, or AllowedIPs beyond
        `max_routes_per_user` counted over all their tunnels (``name`` itself not counted twice)."""
        if owner == 0:
            return
        mine = [t for t in self.tunnels.values() if t.owner == owner and t.name != name]
        most = self.settings.max_tunnels_per_user
        if len(mine) >= most:
            raise TunnelError(
                "limit",
                f"you have {len(mine)} tunnels up, the most one user may have "
                f"(max_tunnels_per_user = {most} in /etc/wgdesk/helper.toml); take one down first",
            )
        total = allowed + sum(t.allowed_count for t in mine)
        most = self.settings.max_routes_per_user
        if total > most:
            raise TunnelError(
                "limit",
                f"{name} has {allowed} AllowedIPs entries; with your other tunnels that makes {total}, "
                f"more than one user may route (max_routes_per_user = {most} in /etc/wgdesk/helper.toml)",
            )

    def _check_tables(self, owner: int, table: str, full_fwmark: int | None) -> None:
        """A member's ``Table =`` (or the table an explicit ``FwMark`` of a full tunnel names) must be
        one nothing on this machine uses yet (`conflicts.system_table_refusal`)."""
        own = [t.footprint for t in self.tunnels.values() if t.owner == owner and t.footprint]
        for wanted in (table, *([str(full_fwmark)] if full_fwmark else [])):
            why = conflicts.system_table_refusal(wanted, self._table_in_use, own)
            if why is not None:
                raise TunnelError("conflict", why)

    def _table_in_use(self, number: str) -> bool:
        routing = self.platform.routing
        return routing.table_in_use(int(number)) or routing.mark_in_use(int(number))

    def _footprint(self, plan: Plan) -> Footprint:
        tables = {str(plan.fwmark)} if plan.full_tunnel else set()
        if conflicts.table_id(plan.table) not in ("auto", "off", "254"):
            tables.add(conflicts.table_id(plan.table))
        return Footprint(
            plan.name,
            plan.owner,
            routes=tuple(r.dst for r in plan.routes),
            addresses=conflicts.address_networks(plan.addresses),
            dns=conflicts.host_networks(plan.dns_servers),
            endpoints=conflicts.host_networks(plan.endpoint_ips),
            tables=frozenset(tables),
            marks=frozenset({plan.fwmark}),
            full=plan.full_tunnel,
            sets_dns=bool(plan.dns_servers or plan.dns_search),
        )

    def _footprints(self) -> list[Footprint]:
        """What the tunnels of this helper take now: those up (and failed, whose owner will bring
        them back), and for blocked ones after a crash only their mark."""
        out = []
        for t in self.tunnels.values():
            if t.footprint is not None:
                out.append(t.footprint)
            elif t.fwmark:
                out.append(Footprint(t.name, t.owner, marks=frozenset({t.fwmark})))
        return out

    def _check_conflicts(self, footprint: Footprint) -> None:
        try:
            conflicts.check(footprint, self._footprints())
        except conflicts.Conflict as e:
            raise TunnelError("conflict", str(e)) from e

    def _free_fwmark(self, name: str, also_taken: Sequence[int] = ()) -> int:
        previous = self.tunnels.get(name)
        if previous is not None and previous.fwmark and not also_taken:
            # a blocked/failed tunnel being brought up again keeps its mark, which its kill switch allows
            return previous.fwmark
        taken = {t.fwmark for t in self.tunnels.values()} | {t.include_mark for t in self.tunnels.values()}
        taken |= {int(n) for f in self._footprints() for n in f.numbers if n.isdigit()}
        taken |= set(also_taken)
        mark = FIRST_FWMARK
        while mark in taken or self._table_in_use(str(mark)):
            mark += 1
        return mark

    def _resolve(self, host: str, port: int) -> str:
        try:
            return resolve(host, port)
        except (OSError, UnicodeError) as e:
            hint = (
                " (lockdown blocks DNS outside tunnels: give the endpoint as an IP address, or put the "
                "name in /etc/hosts)"
                if self.lockdown.blocking
                else ""
            )
            raise TunnelError("invalid", f"cannot resolve endpoint {host}: {e}{hint}") from e

    def _auto_mtu(self, endpoint_ips: Sequence[str]) -> int:
        routing = self.platform.routing
        mtus = [m for m in (routing.route_mtu(ip) for ip in endpoint_ips) if m]
        if not mtus:
            d = routing.default_route_mtu()
            mtus = [d] if d else [1500]
        return max(1280, int(min(mtus)) - 80)

    # --- bring-up ---------------------------------------------------------------------------

    def _bring_up(self, plan: Plan, tunnel: Tunnel) -> None:
        """Carry out ``plan``: the steps of `bringup.STEPS`, in order (each journals before it
        changes anything; a failure rolls back what the journal holds)."""
        bringup.run(self, plan, tunnel)

    def _configure_engine(self, plan: Plan, tunnel: Tunnel, takes_fds: bool) -> None:
        from wgdesk.config import key_bytes

        peers = tuple(
            PeerChange(
                public_key=key_bytes(p["public_key"]),
                preshared_key=key_bytes(p["preshared_key"]) if p["preshared_key"] else None,
                endpoint=p["endpoint"],
                persistent_keepalive=p["keepalive"],
                replace_allowed_ips=True,
                allowed_ips=tuple(p["allowed_ips"]),
            )
            for p in plan.peers
        )
        change = DeviceChange(
            private_key=plan.private_key,
            listen_port=None if takes_fds else plan.listen_port,
            fwmark=None if takes_fds else plan.fwmark,
            replace_peers=True,
            peers=peers,
        )
        engine = tunnel.engine
        alive = engine.alive if engine is not None else None
        try:
            uapi_request(plan.ifname, uapi.format_set(change), alive=alive)
        except EngineError as e:
            if engine is not None and engine.exited.wait(1.0):
                tail = [r["message"] for r in self.log.records(plan.name) if r["source"] == "engine"][-3:]
                raise EngineError(
                    f"the engine exited with status {engine.proc.returncode}"
                    + (": " + " / ".join(tail) if tail else "")
                ) from e
            raise
        device = uapi_get(plan.ifname)
        if not takes_fds:
            tunnel.listen_port = int(device.get("listen_port", 0))

    @staticmethod
    def _recorder(journal: Journal) -> Callable[[UndoRecord], None]:
        """What the OS backend journals its own changes through."""

        def record(entry: UndoRecord) -> None:
            journal.add(entry)

        return record

    def _full(self, plan: Plan) -> FullTunnel:
        return FullTunnel(
            plan.ifname,
            plan.fwmark,
            tuple(plan.addresses),
            frozenset(plan.default_families),
            self.lan,
            tuple(plan.endpoint_ips),  # macOS routes each outside the tunnel (no policy routing)
        )

    def _full_tunnel(self, plan: Plan, j: Journal) -> None:
        self.platform.routing.full_tunnel_on(self._full(plan), self._recorder(j))

    def _full_tunnel_firewall(self, plan: Plan, j: Journal) -> None:
        """What must be in place before the engine's first initiation: the mark settings and the full
        tunnel's packet filter (conntrack marks of the engine's UDP, injection guard, IPv6 block)."""
        self._mark_settings(plan.default_families, j)
        self.platform.firewall.full_tunnel_on(self._full(plan), self._recorder(j))

    def _bypass(self, plan: Plan, tunnel: Tunnel) -> None:
        """Let processes of the bypass cgroup around this full tunnel (when allowed and possible)."""
        refusal = self.split.refusal("exclude")
        if refusal is not None:
            if self.settings.allow_split_tunnel:
                self.log.info(plan.name, refusal[1])
            return
        tunnel.journal.add(BypassOn(plan.ifname))
        self.split.bypass_on(
            Bypass(plan.ifname, plan.fwmark, tuple(plan.addresses), tuple(plan.dns_servers)),
            self._recorder(tunnel.journal),
        )
        tunnel.bypass = True
        self.log.info(plan.name, f"apps in cgroup {self.split.group('exclude')} bypass this full tunnel")
        if self.kill_switch or self.lockdown.enabled:
            self._apply_kill_switch()

    def _mark_settings(self, families: set[int], j: Journal) -> None:
        """The machine settings marked traffic of ``families`` needs (Linux: IPv4 reverse-path checks
        that use the packet's mark, for replies restored from conntrack), journalled with their old
        value."""
        routing = self.platform.routing
        for setting in routing.mark_settings(frozenset(families)):
            old = routing.read_setting(setting.key)
            if old != setting.value:
                j.add(SettingChanged(setting.key, old))
                routing.write_setting(setting.key, setting.value)

    def _include(self, plan: Plan, tunnel: Tunnel) -> None:
        """Send the include cgroup's traffic only through this tunnel (full tunnel off, peers allow a
        default route): first such tunnel up serves; another one up meanwhile does not. Only the
        owner's processes are marked: another user's included apps stay blocked (the include
        guard), never sent through someone else's tunnel."""
        serving = [t.name for t in self.tunnels.values() if t.include_mark and t.name != plan.name]
        if serving:
            self.log.info(
                plan.name, f"included apps keep going through tunnel {serving[0]} (it was up first)"
            )
            return
        full = [t.name for t in self.tunnels.values() if t.full_tunnel and t.owner != plan.owner]
        if full:
            self.log.info(
                plan.name, f"included apps are not sent through this tunnel: {full[0]} is a full tunnel"
            )
            return
        refusal = self.split.refusal("include")
        if refusal is not None:
            if self.settings.allow_split_tunnel:
                self.log.info(plan.name, refusal[1])
            return
        j = tunnel.journal
        mark = self._free_fwmark(plan.name, also_taken=[plan.fwmark])
        defaults = [ip_network("0.0.0.0/0" if f == 4 else "::/0") for f in sorted(plan.include_families)]
        j.add(RoutesAdded(plan.ifname, str(mark), tuple(str(d) for d in defaults)))
        self.platform.routing.add_routes(plan.ifname, defaults, str(mark))
        families = frozenset(plan.include_families)
        self.platform.routing.mark_routing_on(mark, families, self._recorder(j))
        self._mark_settings(plan.include_families, j)
        j.add(IncludeOn(plan.ifname, mark))
        tunnel.include_mark = mark
        if tunnel.footprint is not None:
            tunnel.footprint = dataclasses.replace(
                tunnel.footprint,
                include_families=frozenset(plan.include_families),
                tables=tunnel.footprint.tables | {str(mark)},
                marks=tunnel.footprint.marks | {mark},
            )
        self._sync_include_guard(wanted=True)
        self.split.include_on(Include(plan.ifname, mark, families, plan.owner or None), self._recorder(j))
        self.log.info(plan.name, f"apps in cgroup {self.split.group('include')} go only through this tunnel")
        if self.kill_switch or self.lockdown.enabled:
            self._apply_kill_switch()

    def split_include(self, conn: Connection, uid: int) -> dict[str, Any]:
        """Move the process at the other end of ``conn`` into the include cgroup (`split`), once the
        include guard is in place: with no tunnel of its user serving, it gets nothing out."""
        refusal = self.split.refusal("include")
        if refusal is not None:
            raise TunnelError(*refusal)
        with self._lock:
            try:
                self._sync_include_guard(wanted=True)
            except PlatformError as e:
                raise TunnelError("failed", f"cannot put the include guard in place: {e}") from e
        try:
            moved = self.split.move_peer(conn, uid, "include")
        except SplitError as e:
            raise TunnelError(e.code, e.message) from e
        return {**moved.as_dict(), **self._include_state(uid)}

    def _sync_include_guard(self, wanted: bool = False) -> None:
        """The include guard (`SplitTunnel.guard_on`) is in place while the include cgroup
        has processes or a tunnel serves it, or when ``wanted`` (one is about to join it); it goes
        once neither is the case. Call with the lock held."""
        if any(t.include_mark for t in self.tunnels.values()):
            wanted = True
        if wanted:
            if not self._include_guard:
                self.split.guard_on()
                self._include_guard = True
                group = self.split.group("include")
                self.log.info(None, f"included apps (cgroup {group}) get out only through a tunnel")
        elif self._include_guard and not self.split.members("include"):
            self.split.guard_off()
            self._include_guard = False

    def split_exclude(self, conn: Connection, uid: int) -> dict[str, Any]:
        """Move the process at the other end of ``conn`` into the bypass cgroup (`split`)."""
        try:
            moved = self.split.move_peer(conn, uid, "exclude")
        except SplitError as e:
            raise TunnelError(e.code, e.message) from e
        return {**moved.as_dict(), **self._split_state()}

    def split_list(self, uid: int | None) -> dict[str, Any]:
        """The excluded processes (of ``uid`` only, unless None) and whether a full tunnel is bypassed."""
        refusal = self.split.refusal("exclude")
        processes = self.split.members("exclude", uid) + self.split.members("include", uid)
        return {
            "available": refusal is None,
            "reason": refusal[1] if refusal else None,
            "processes": [p.as_dict() for p in processes],
            **self._split_state(),
            "include": self._include_state(uid),
        }

    def _include_state(self, uid: int | None = None) -> dict[str, Any]:
        """Whether a tunnel serves included apps (of ``uid``: root's tunnel serves everyone's, a
        member's only the member's own)."""
        serving = [
            t.name
            for t in self._snapshot()
            if t.include_mark and t.state == "up" and (uid is None or t.owner in (0, uid))
        ]
        return {
            "cgroup": self.split.group("include"),
            "active": bool(serving),
            "tunnel": serving[0] if serving else None,
        }

    def _split_state(self) -> dict[str, Any]:
        bypassed = [t.name for t in self._snapshot() if t.bypass and t.state == "up"]
        return {
            "cgroup": self.split.group("exclude"),
            "active": bool(bypassed),
            "tunnel": bypassed[0] if bypassed else None,
        }

    def _set_dns(self, plan: Plan, tunnel: Tunnel) -> None:
        dns = self.platform.dns
        tunnel.dns_file = dns.exclusive
        dns.set(plan.ifname, plan.dns_servers, plan.dns_search, self._recorder(tunnel.journal))

    # --- hooks ---------------------------------------------------------------------------------

    def _hooks(self, name: str, ifname: str, commands: Sequence[str], when: str) -> None:
        if not commands or not self.settings.allow_scripts:
            return
        for cmd in commands:
            self.log.info(name, f"running {when} hook")
            status = self.platform.service.run_hook(cmd, ifname, 60)
            if status != 0:
                raise TunnelError("failed", f"{when} hook exited with {status}")

    def _run_hooks(self, tunnel: Tunnel, when: str) -> None:
        for e in tunnel.journal.entries:
            if e["kind"] == "hook" and e["when"] == when:
                try:
                    self._hooks(tunnel.name, tunnel.ifname, e["commands"], when)
                except (TunnelError, OSError, subprocess.SubprocessError) as err:
                    self.log.warning(tunnel.name, f"{when} hook failed: {err}")

    # --- undo ----------------------------------------------------------------------------------

    def _undo(self, tunnel: Tunnel | None, journal: Journal, keep: set[str] = frozenset()) -> None:  # type: ignore[assignment]
        name = journal.header.get("name")
        for entry in journal.newest_first():
            if entry["kind"] in keep:
                continue
            try:
                self._undo_entry(tunnel, entry)
            except Exception as e:
                self.log.error(name, f"undo of {entry['kind']} failed: {e}")

    def _undo_entry(self, tunnel: Tunnel | None, e: Entry) -> None:
        """Undo one journal line: a record of the helper's (`bringup.UNDO`), else the OS backend's."""
        record = bringup.UNDO.load(e)
        if record is not None:
            bringup.UNDO.undo(record, bringup.Undoing(self, tunnel))
            return
        record = self.platform.load_record(e)
        if record is None:
            raise ValueError(f"unknown journal entry {e['kind']!r}")
        self.platform.undo(record)

    def _restore_sysctl(self, tunnel: Tunnel | None, e: SettingChanged) -> None:
        # Another live tunnel still needs the value: hand it our saved original instead.
        for other in self.tunnels.values():
            if other is tunnel:
                continue
            for oe in other.journal.entries:
                if oe["kind"] == "sysctl" and oe["key"] == e.key:
                    oe["old"] = e.old
                    other.journal.keep_only({x["kind"] for x in other.journal.entries})
                    return
            needed = {s.key for s in self.platform.routing.mark_settings(frozenset({4, 6}))}
            if other.full_tunnel and e.key in needed and other.state == "up":
                other.journal.add(e)
                return
        self.platform.routing.write_setting(e.key, e.old)

    def _apply_kill_switch(self) -> None:
        """Put the kill-switch table in line with the members (and lockdown, unless paused): replaced
        in one transaction, or deleted when nothing needs it. Under the firewall lock only (never
        waits for a bring-up); the state it reads is copied, and whoever changes it applies again."""
        with self._firewall:
            members = dict(self.kill_switch)
            tunnels = self._snapshot()
            lockdown = self.lockdown.blocking
            if lockdown:
                # every tunnel of this helper is let out, whether or not it has a kill switch itself
                for t in tunnels:
                    if t.name not in members:
                        members[t.name] = KillSwitchMember(t.name, t.ifname, t.fwmark, t.listen_port)
            bypass = [t.fwmark for t in tunnels if t.bypass]
            # included apps' packets: the output hook sees the first route's interface, not the tunnel
            # (the include table's leak guard drops them anywhere else)
            bypass += [t.include_mark for t in tunnels if t.include_mark]
            if members or lockdown:
                self.platform.firewall.apply_kill_switch(
                    KillSwitch(tuple(members.values()), self.lan, tuple(bypass))
                )
            else:
                self.platform.firewall.remove_kill_switch()
            if self.lockdown.error is not None:
                self.platform.firewall.unblock_all()
                self.lockdown.error = None
                self.log.info(
                    None, "lockdown: the firewall is in place; the failsafe routing block is lifted"
                )

    def _block_or_failsafe(self, what: str) -> None:
        """Apply lockdown's block; when nft fails, block with the failsafe rules instead (fail
        closed) and say so. Raises only when even that fails."""
        try:
            self._apply_kill_switch()
        except Exception as e:
            reason = f"could not put the kill switch in place ({what}): {e}"
            with self._firewall:
                self.lockdown.error = reason
                self.platform.firewall.block_all()
            self.log.error(
                None,
                f"lockdown: {reason}; blocking all routed traffic by the failsafe instead (tunnels "
                "cannot work either) until the firewall works",
            )

    # --- lockdown ------------------------------------------------------------------------------

    def enforce_lockdown(self) -> None:
        """At helper start, before anything else: with lockdown on, the table goes in at once
        (no members yet: `recover` adds those of blocked tunnels). If nft fails, the failsafe
        blocks instead; if that fails too, this raises (the helper then does not start)."""
        if not self.lockdown.enabled:
            return
        self._block_or_failsafe("at start")
        if self.lockdown.error is None:
            self.log.info(
                None, f"lockdown is on ({self._lockdown_origin()}): traffic is blocked except through tunnels"
            )

    def lockdown_state(self) -> dict[str, Any]:
        """``{"enabled", "policy", "paused_until", "pause_max", "error"}`` (the ``lockdown`` object of
        ``version``)."""
        return self.lockdown.as_dict()

    def set_lockdown(self, enabled: bool) -> dict[str, Any]:
        """Turn lockdown on or off (policy ``user`` only) and apply it at once; persistent. Takes the
        firewall lock, not the manager's: it does not wait for a bring-up."""
        with self._firewall:
            try:
                self.lockdown.set(enabled)
            except LockdownRefused as e:
                raise TunnelError("denied", str(e)) from e
            except OSError as e:
                raise TunnelError(
                    "failed", f"could not store the lockdown setting in {self.lockdown.path}: {e.strerror}"
                ) from e
            try:
                self._end_pause()  # an explicit choice ends a pause
                if enabled or self.kill_switch:
                    self._apply_kill_switch()
                else:
                    self.platform.firewall.remove_kill_switch()
                    if self.lockdown.error is not None:
                        self.platform.firewall.unblock_all()
                        self.lockdown.error = None
            except Exception as e:
                self.log.error(None, f"lockdown: could not apply the kill switch: {e}")
                raise TunnelError("failed", f"lockdown stored but not applied: {e}") from e
            self.log.info(
                None,
                "lockdown on: traffic is blocked except through tunnels"
                if enabled
                else "lockdown off: traffic flows normally while no tunnel with a kill switch is up",
            )
            state = self.lockdown.as_dict()
        self.events.publish({"event": "lockdown", **state})
        return state

    def pause_lockdown(self, seconds: int) -> dict[str, Any]:
        """Lift lockdown's block for ``seconds`` (captive portals): with no tunnel up, the table goes;
        tunnels' own kill switches stay. In memory only; a timer puts the block back. The pause
        lives under the firewall lock, so it ends on time even while a bring-up holds the manager's."""
        with self._firewall:
            try:
                deadline = self.lockdown.pause(seconds)
            except PauseRefused as e:
                raise TunnelError(e.code, str(e)) from e
            if self._pause_timer is not None:
                self._pause_timer.cancel()
            timer = threading.Timer(max(0.0, deadline - time.monotonic()), self._pause_expired, (deadline,))
            timer.daemon = True
            timer.name = "lockdown-pause"
            self._pause_timer = timer
            timer.start()
            try:
                self._apply_kill_switch()
            except Exception as e:
                self._end_pause()
                self.log.error(None, f"lockdown: could not lift the block for the pause: {e}")
                raise TunnelError("failed", f"could not pause lockdown: {e}") from e
            state = self.lockdown.as_dict()
            self.log.warning(
                None,
                f"lockdown paused for {seconds} s: traffic flows outside tunnels until the pause ends "
                "(tunnels' own kill switches still apply)",
            )
        self.events.publish({"event": "lockdown", **state})
        return state

    def resume_lockdown(self) -> dict[str, Any]:
        """End a lockdown pause now (nothing to do without one)."""
        with self._firewall:
            was_paused = self.lockdown.paused_until is not None
            try:
                self._end_pause()
            except Exception as e:
                self.log.error(None, f"lockdown: could not put the block back: {e}")
                raise TunnelError("failed", f"could not resume lockdown: {e}") from e
            state = self.lockdown.as_dict()
            if was_paused:
                self.log.info(None, "lockdown resumed: traffic is blocked again except through tunnels")
        if was_paused:
            self.events.publish({"event": "lockdown", **state})
        return state

    def _end_pause(self) -> None:
        """Forget the pause and its timer, and put lockdown's block back (call with the firewall
        lock held)."""
        if self._pause_timer is not None:
            self._pause_timer.cancel()
            self._pause_timer = None
        if self.lockdown.pause_deadline() is not None:
            self.lockdown.resume()
            if self.lockdown.enabled:
                self._apply_kill_switch()

    def _pause_expired(self, deadline: float) -> None:
        with self._firewall:
            if self.lockdown.pause_deadline() != deadline:
                return  # replaced or ended meanwhile
            self._pause_timer = None
            self.lockdown.resume()
            if self.lockdown.enabled:
                self._block_or_failsafe("when the pause ended")
            elif self.kill_switch:
                try:
                    self._apply_kill_switch()
                except Exception as e:
                    self.log.error(None, f"the pause ended but the kill switch could not be applied: {e}")
            if self.lockdown.error is None:
                self.log.info(None, "lockdown pause ended: traffic is blocked again except through tunnels")
            state = self.lockdown.as_dict()
        self.events.publish({"event": "lockdown", **state})

    def _lockdown_origin(self) -> str:
        return "forced by the administrator" if self.lockdown.policy == "always" else str(self.lockdown.path)

    # --- engine exit, recovery, shutdown -------------------------------------------------------

    def _engine_exited(self, engine: EngineProcess) -> None:
        def note() -> None:
            with self._lock:
                for t in self.tunnels.values():
                    if t.engine is engine and t.state == "up":
                        t.move(TunnelState.FAILED)
                        t.message = (
                            f"the engine exited (status {engine.proc.returncode}); "
                            + (
                                "the kill switch keeps blocking"
                                if t.kill_switch
                                else "traffic is not protected"
                            )
                            + f" until `wgdeskctl down {t.name}`"
                        )
                        self.log.error(t.name, t.message)
                        self._publish(t)

        threading.Thread(target=note, daemon=True).start()

    def recover(self) -> None:
        """Undo what a crashed helper left behind; keep blocking for tunnels that had a kill switch."""
        with self._lock:
            for path in find(self.journal_dir):
                try:
                    journal = Journal.load(path)
                except (OSError, ValueError) as e:
                    self.log.error(None, f"unreadable journal {path.name}: {e}")
                    continue
                name = str(journal.header.get("name", path.stem))
                owner = int(journal.header.get("owner", 0))  # journals of wgdesk 0.1: root's
                ks = [e for e in journal.entries if e["kind"] == "killswitch"]
                self.log.own(name, owner)
                self.log.warning(name, "found the journal of a previous helper run: restoring the system")
                self._undo(None, journal, keep={"killswitch"})
                if ks and journal.replacing and name in self.tunnels:
                    journal.delete()
                    continue
                if ks:
                    entry = ks[-1]
                    journal.keep_only({"killswitch"})
                    if journal.replacing:
                        journal.take_place_of(None)
                    journal.update_header(state=TunnelState.BLOCKED)
                    tunnel = Tunnel(
                        name,
                        str(entry["ifname"]),
                        TunnelState.BLOCKED,
                        journal,
                        kill_switch=True,
                        fwmark=int(entry["fwmark"]),
                        owner=owner,
                        message="the helper stopped unexpectedly; the kill "
                        "switch keeps blocking traffic. Bring the tunnel up again, or run "
                        f"`wgdeskctl down {name}` to stop blocking.",
                    )
                    self.tunnels[name] = tunnel
                    self.kill_switch[name] = KillSwitchMember(
                        name, str(entry["ifname"]), int(entry["fwmark"]), int(entry.get("listen_port", 0))
                    )
                    self.log.warning(name, tunnel.message or "")
                else:
                    journal.delete()
                    self.log.disown(name)
            self.platform.dns.restore_left()
            self._recover_include_guard()
            if self.lockdown.enabled:
                self._block_or_failsafe("after a restart")
            elif self.kill_switch:
                self._apply_kill_switch()
            elif self.platform.firewall.kill_switch_present():
                # left by a helper stopped in lockdown, which is off now (the administrator's policy
                # changed, or the state file went): nothing needs it any more
                self.platform.firewall.remove_kill_switch()
                self.log.warning(
                    None, "lockdown is off: removed the kill switch a previous helper left in place"
                )
            if not self.lockdown.enabled and self.platform.firewall.blocking_all():
                self.platform.firewall.unblock_all()
                self.log.warning(None, "lockdown is off: removed the failsafe block a previous helper left")

    def _recover_include_guard(self) -> None:
        """A guard left by the previous helper stays while included apps still run (they would get
        out around the tunnel otherwise), and goes once none is left."""
        if not self.split.guard_present():
            return
        self._include_guard = True
        try:
            self.split.locate("include")  # find (or mount) the hierarchy to see who is still in it
        except SplitError as e:
            self.log.warning(None, f"included apps: {e.message}; keeping their guard")
            return
        left = self.split.members("include")
        self._sync_include_guard()
        if left:
            self.log.info(
                None,
                f"{len(left)} included app(s) still running: they stay blocked until a tunnel serves them",
            )

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

    def shutdown(self) -> None:
        """Orderly stop (SIGTERM): every tunnel down, kill switches included — except with
        lockdown on, whose table stays so nothing leaks while the helper is stopped or restarting."""
        with self._lock:
            for name in list(self.tunnels):
                try:
                    self.down(name)
                except Exception as e:
                    self.log.error(name, f"down during shutdown failed: {e}")
            try:
                self._sync_include_guard()  # stays while included apps run: they must not get out
            except PlatformError as e:
                self.log.error(None, f"could not remove the include guard: {e}")
            self.split.close()
            if self._pause_timer is not None:
                self._pause_timer.cancel()
                self._pause_timer = None
            self.lockdown.resume()  # a pause never outlives the helper
            if self.lockdown.enabled:
                try:
                    self._apply_kill_switch()
                except Exception as e:
                    self.log.error(None, f"lockdown: could not leave the kill switch in place: {e}")
                else:
                    self.log.warning(
                        None,
                        "lockdown is on: the kill switch stays in place while the helper is stopped; "
                        "`wgdeskctl lockdown off` with the helper running, or removing the package, "
                        "lifts it",
                    )

    # --- reporting -----------------------------------------------------------------------------

    def _publish(self, tunnel: Tunnel) -> None:
        self.events.publish(
            {"event": "state", "tunnel": tunnel.name, "state": tunnel.state, "message": tunnel.message},
            tunnel.owner,
        )

    def _describe(self, t: Tunnel, live: bool) -> dict[str, Any]:
        peers: list[dict[str, Any]] = []
        message, listen_port = t.message, t.listen_port
        if live and t.engine is not None and t.engine.alive() and t.state == "up":
            try:
                device = uapi_get(t.ifname, timeout=3.0)
                # wireguard-go has no counters (it would log every request as an invalid operation)
                ours = self.settings.engine_takes_udp_fds()
                counters = uapi_counters(t.ifname, timeout=3.0) if ours else None
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
