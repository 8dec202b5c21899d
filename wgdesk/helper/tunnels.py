"""The tunnel manager: the table of this helper's tunnels, its lock, and ``up``/``down``/``update``
orchestrated as journalled transactions.

Bring-up order (each step journalled before it is made, see `bringup.STEPS`):
PreUp hooks → TUN → UAPI listener → UDP sockets → engine → UAPI configuration → kill switch →
addresses, MTU, link up → routes (and full-tunnel policy routing + nft) → DNS → PostUp hooks.
Any failure undoes the journal newest-first. The kill switch goes in before any route so there
is no window in which the tunnel's traffic could take the physical link.

What is not orchestration lives in the modules it delegates to, one concept each: `validation`
(what a tunnel may take), `planning` (what a bring-up will do), `bringup` (the steps and their
undo), `live_update` (what changes without a restart), `lockdown` (the kill-switch table, lockdown
and its pause), `split_tunnel` (excluded and included apps), `recovery` (a crashed helper's
journals) and `reporting` (status, diagnosis, logs). The control server calls those owners directly.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wgdesk import platforms, uapi
from wgdesk.helper import bringup, live_update, planning, recovery, validation
from wgdesk.helper import mtu as path_mtu
from wgdesk.helper.caller import ROOT, Caller
from wgdesk.helper.conflicts import Footprint
from wgdesk.helper.engine_process import EngineError, EngineProcess, uapi_request
from wgdesk.helper.errors import TunnelError
from wgdesk.helper.events import Events
from wgdesk.helper.journal import Entry, Journal
from wgdesk.helper.lockdown import Lockdown, LockdownController
from wgdesk.helper.logbook import HelperNotes, LogBook
from wgdesk.helper.planning import Plan, Route, by_table, routes_for
from wgdesk.helper.records import MtuLowered
from wgdesk.helper.reporting import Reports
from wgdesk.helper.resolver import EndpointName, NamedTunnel, Reresolver, resolve
from wgdesk.helper.settings import PRIVATE_LAN_RANGES, Settings
from wgdesk.helper.split_tunnel import SplitTunnels
from wgdesk.helper.state import REPLACEABLE, Tunnel, TunnelState
from wgdesk.helper.validation import Validation
from wgdesk.platforms import PlatformError
from wgdesk.platforms.interface import KillSwitchMember, PlatformOptions
from wgdesk.proto.changes import DeviceChange

if TYPE_CHECKING:
    from wgdesk.config import Config


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
        self._lock = threading.RLock()
        self.reresolver = Reresolver(self, settings)
        """Re-resolves endpoint names of running tunnels; its thread is started by `main`."""
        self._probing: set[str] = set()
        """Tunnels with an MTU probe running (one at a time each)."""
        self.platform = platforms.create(_options(settings, state_dir), HelperNotes(logbook))
        """The OS backend, configured by the administrator's settings."""
        self.lockdown = LockdownController(
            Lockdown(
                settings.lockdown, Path(settings.lockdown_file), logbook, settings.lockdown_pause_limit()
            ),
            self.platform.firewall,
            self.snapshot,
            PRIVATE_LAN_RANGES if settings.allow_lan else (),
            logbook,
            events,
        )
        """The kill-switch table and lockdown: it stays even with no tunnel up (`set_lockdown`)."""
        self.validation = Validation(settings, self.platform, self.tunnels)
        """What a tunnel may take (limits, conflicts with other tunnels and the system)."""
        self.split_tunnel = SplitTunnels(
            settings, self.platform, self.tunnels, self._lock, self.validation, self.lockdown, logbook
        )
        """Excluded and included apps, and the include guard."""
        self.reports = Reports(self.snapshot, logbook, events, settings.engine_takes_udp_fds)
        """``status``, ``diagnose``, ``logs`` and handshake events (no lock taken)."""

    # --- the table of tunnels -------------------------------------------------------------

    def snapshot(self) -> list[Tunnel]:
        """The tunnels now, without the manager's lock (a bring-up may hold it for seconds):
        copying a dict's values is one step under the GIL; a tunnel's fields are read as they are."""
        return list(self.tunnels.values())

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

    # --- up -----------------------------------------------------------------------------

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
        cfg = validation.parse(name, text)
        resolved = self._resolve_all(cfg)
        with self._lock:
            existing = self._replaceable(name, caller)
            plan = self._plan(name, cfg, resolved, full_tunnel, kill_switch, caller.uid)
            existing = self._clear_failed(existing)
            if existing is not None:
                # A tunnel left blocking after a crash: keep its kill-switch entry until the new
                # bring-up has its own, so there is no unblocked moment.
                self.tunnels.pop(name)
            blocked_member = self.lockdown.members.get(name)
            tunnel = self._starting(plan, replacing=existing is not None)
            try:
                bringup.run(self, plan, tunnel)
            except Exception as e:
                self._roll_back(plan, tunnel, existing, blocked_member, e)
            if existing is not None:
                tunnel.journal.take_place_of(existing.journal)
            self._running_now(plan, tunnel)
            return self.reports.describe(tunnel, live=False)

    def _replaceable(self, name: str, caller: Caller) -> Tunnel | None:
        """The tunnel already named ``name`` (one a new bring-up may replace: failed or blocked),
        or None; ``conflict`` for one that runs, ``denied`` for another user's."""
        existing = self.tunnels.get(name)
        if existing is not None:
            self._authorise(existing, caller)
            if existing.state not in REPLACEABLE:
                raise TunnelError(
                    "conflict",
                    f"tunnel {name} is already {existing.state}; run `wgdeskctl down {name}` first",
                )
        return existing

    def _clear_failed(self, existing: Tunnel | None) -> Tunnel | None:
        """A tunnel whose engine died: clear its remains but keep blocking (as a blocked tunnel)
        until the new bring-up is done; None when it had no kill switch to keep."""
        if existing is None or existing.state != TunnelState.FAILED:
            return existing
        self.undo(existing, existing.journal, keep=frozenset({"killswitch"}))
        if any(e["kind"] == "killswitch" for e in existing.journal.entries):
            existing.journal.keep_only({"killswitch"})
            existing.move(TunnelState.BLOCKED)
            existing.engine, existing.footprint = None, None
            return existing
        existing.journal.delete()
        self.tunnels.pop(existing.name)
        return None

    def _starting(self, plan: Plan, replacing: bool) -> Tunnel:
        """The new tunnel of ``plan`` in the table (state ``starting``) with its journal created."""
        name = plan.name
        header = {
            "name": name,
            "ifname": plan.ifname,
            "owner": plan.owner,
            "full_tunnel": plan.full_tunnel,
            "kill_switch": plan.kill_switch,
            "fwmark": plan.fwmark,
            "state": TunnelState.STARTING,
            "time": time.time(),
        }
        journal = Journal.create(self.journal_dir, name, header, replacing=replacing)
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
            footprint=validation.footprint(plan),
            allowed_count=plan.allowed_count,
        )
        # owned from the first moment: a `down` or `up` of another member meanwhile is refused
        self.log.own(name, plan.owner)
        self.tunnels[name] = tunnel
        self._publish(tunnel)
        return tunnel

    def _roll_back(
        self,
        plan: Plan,
        tunnel: Tunnel,
        existing: Tunnel | None,
        blocked_member: KillSwitchMember | None,
        e: Exception,
    ) -> None:
        """A failed bring-up: undo its journal, put back the tunnel it replaced (blocking again),
        and raise the error the caller gets."""
        name = plan.name
        if isinstance(e, OSError):
            message = f"{e.strerror or e}" + (f": {e.filename}" if e.filename else "")
        else:
            message = str(e) if isinstance(e, (TunnelError, EngineError, PlatformError)) else repr(e)
        self.log.error(name, f"bring-up failed, rolling back: {message}")
        tunnel.move(TunnelState.ROLLING_BACK)  # not STOPPING: PostDown hooks are for a real down
        self.undo(tunnel, tunnel.journal)
        tunnel.journal.delete()
        self.tunnels.pop(name, None)
        if existing is not None:
            self.tunnels[name] = existing
            self.log.own(name, existing.owner)
            if blocked_member is not None:
                self.lockdown.members[name] = blocked_member
        if existing is not None or self.lockdown.enabled:
            # the failed tunnel is no longer let out (a blocked one blocks again)
            self.lockdown.block_or_failsafe("after a failed bring-up")
        self._publish(
            existing
            or Tunnel(name, plan.ifname, TunnelState.DOWN, tunnel.journal, message=message, owner=plan.owner)
        )
        if existing is None:
            self.log.disown(name)
        code = e.code if isinstance(e, TunnelError) else "failed"
        raise TunnelError(code, f"could not bring {name} up: {message}") from e

    def _running_now(self, plan: Plan, tunnel: Tunnel) -> None:
        """A bring-up done: the tunnel is up, said so, and its name re-resolving and MTU probe start."""
        name = plan.name
        tunnel.move(TunnelState.UP)
        tunnel.since = time.time()
        tunnel.config = plan.config
        tunnel.names = plan.names
        tunnel.mtu = plan.mtu
        tunnel.journal.update_header(state=TunnelState.UP, listen_port=tunnel.listen_port)
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

    def down(self, name: str, caller: Caller = ROOT) -> dict[str, Any]:
        with self._lock:
            tunnel = self.tunnels.get(name)
            if tunnel is None:
                raise TunnelError("not_found", f"no tunnel named {name} is up")
            self._authorise(tunnel, caller)
            tunnel.move(TunnelState.STOPPING)
            self._publish(tunnel)
            self._run_recorded_hooks(tunnel, "PreDown")
            self.undo(tunnel, tunnel.journal)
            tunnel.journal.delete()
            self.tunnels.pop(name, None)
            if self.lockdown.enabled:
                self.lockdown.apply()  # lockdown: the tunnel's exemptions go, the block stays
            self.log.info(name, "down")
            self.log.disown(name)
            tunnel.move(TunnelState.DOWN)
            tunnel.message = None
            self._publish(tunnel)
            try:
                self.split_tunnel.sync_include_guard()
            except PlatformError as e:
                self.log.error(None, f"could not remove the include guard: {e}")
            return {"name": name, "state": "down"}

    # --- update -------------------------------------------------------------------------

    def update(self, name: str, text: str, caller: Caller = ROOT) -> dict[str, Any]:
        """Apply an edited config to the running tunnel ``name`` without restarting it.

        Only peers change live (added, removed, their PresharedKey, Endpoint, PersistentKeepalive
        and AllowedIPs, with the routes of AllowedIPs); anything else raises ``restart_required``
        with the keys in ``details["keys"]`` before anything is touched. Route changes are
        journalled like those of `up`, so `down` and crash recovery undo what exists.
        """
        cfg = validation.parse(name, text)
        running = self.tunnels.get(name)  # a look without the lock, only to resolve names early
        before = running.config if running is not None else None
        early = self._resolve_all(cfg, unchanged_from=before)
        with self._lock:
            tunnel, engine, current = self._running(name, "bring it up again to use the new config", caller)
            keys = live_update.restart_keys(current, cfg)
            if keys:
                raise TunnelError(
                    "restart_required",
                    f"{', '.join(keys)} of {name} can only change when the tunnel reconnects; "
                    "nothing was changed (take it down and up again to apply the config)",
                    {"keys": keys},
                )
            new = live_update.peer_states(cfg.peers)
            nets = list(dict.fromkeys(cfg.all_allowed_ips()))
            routes, footprint = self._checked_routes(tunnel, cfg, nets)
            diff = live_update.peer_changes(
                live_update.peer_states(current.peers), new, lambda ep: early.get(ep) or self._resolve(*ep)
            )
            had, has = set(tunnel.routes), set(routes)
            new_routes = [r for r in routes if r not in had]
            old_routes = [r for r in tunnel.routes if r not in has]
            self._apply_live(tunnel, engine, new_routes, diff)
            for table_name, dsts in by_table(old_routes).items():
                self.platform.routing.delete_routes(tunnel.ifname, dsts, table_name)
                tunnel.journal.forget_routes(tunnel.ifname, table_name, {str(d) for d in dsts})
            tunnel.routes, tunnel.footprint, tunnel.allowed_count, tunnel.config = (
                routes,
                footprint,
                len(nets),
                cfg,
            )
            tunnel.names = live_update.updated_names(tunnel.names, new, diff.resolved)
            if tunnel.names:
                self.reresolver.wake()
            summary = [
                f"{len(diff.added)} peer(s) added",
                f"{len(diff.removed)} removed",
                f"{len(diff.changed)} changed",
            ]
            if new_routes or old_routes:
                summary.append(f"routes +{len(new_routes)} -{len(old_routes)}")
            self.log.info(name, "updated live: " + ", ".join(summary))
            return {
                "applied": "live",
                "peers": {"added": diff.added, "removed": diff.removed, "changed": diff.changed},
                "routes": {
                    "added": [str(r.dst) for r in new_routes],
                    "removed": [str(r.dst) for r in old_routes],
                },
                "tunnel": self.reports.describe(tunnel, live=True),
            }

    def _checked_routes(
        self, tunnel: Tunnel, cfg: Config, nets: Sequence[planning.Network]
    ) -> tuple[list[Route], Footprint | None]:
        """The routes ``cfg`` needs through ``tunnel`` and its footprint with them, checked against
        the limits and the other tunnels before anything changes."""
        table = (cfg.interface.table or "auto").lower()
        self.validation.check_limits(tunnel.owner, tunnel.name, len(nets))
        routes = routes_for(nets, table, tunnel.full_tunnel, tunnel.fwmark)
        footprint = tunnel.footprint
        if footprint is not None:
            footprint = dataclasses.replace(footprint, routes=tuple(r.dst for r in routes))
            self.validation.check_conflicts(footprint)
        return routes, footprint

    def _apply_live(
        self,
        tunnel: Tunnel,
        engine: EngineProcess,
        new_routes: Sequence[Route],
        diff: live_update.PeerChanges,
    ) -> None:
        """Routes in before the engine accepts their networks (out after it stops: the caller): a
        packet meanwhile is dropped by the engine, never sent around the tunnel. A failure takes the
        new routes out again and raises ``failed``."""
        done: list[Entry] = []
        try:
            done = bringup.add_routes(self.platform.routing, tunnel, new_routes)
            if diff.changes:
                uapi_request(
                    tunnel.ifname,
                    uapi.format_set(DeviceChange(peers=tuple(diff.changes))),
                    alive=engine.alive,
                )
        except Exception as e:
            for entry in reversed(done):
                try:
                    self.undo_entry(tunnel, entry)
                except Exception as undo_error:
                    self.log.error(
                        tunnel.name, f"undo of routes in table {entry['table']} failed: {undo_error}"
                    )
                else:
                    tunnel.journal.drop(entry)
            message = f"{e.strerror or e}" if isinstance(e, OSError) else str(e)
            self.log.error(tunnel.name, f"live update failed, routes put back: {message}")
            raise TunnelError("failed", f"could not update {tunnel.name}: {message}") from e

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
        answer["tunnel"] = self.reports.describe(tunnel, live=True)
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

    def _resolve_all(self, cfg: Config, unchanged_from: Config | None = None) -> dict[tuple[str, int], str]:
        """The address of every endpoint of ``cfg`` by (host, port) — those of ``unchanged_from``
        left out (a live update resolves only what changed). Called without the lock."""
        skip = set()
        if unchanged_from is not None:
            skip = {p.endpoint for p in live_update.peer_states(unchanged_from.peers).values()}
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
        assert iface.private_key is not None  # `validation.parse` refuses a config without one
        if self.platform.tunnels.exists(name):
            raise TunnelError("conflict", f"an interface named {name} already exists")
        table = (iface.table or "auto").lower()
        all_nets = list(dict.fromkeys(n for p in cfg.peers for n in p.allowed_ips))
        self.validation.check_limits(owner, name, len(all_nets))
        defaults: set[int] = {n.version for n in all_nets if n.prefixlen == 0}
        full, warnings = planning.full_tunnel_choice(defaults, table, iface.table, full_tunnel)
        fwmark = iface.fwmark or self.validation.free_fwmark(name)
        if kill_switch is None:
            mode = self.settings.kill_switch
            kill_switch = mode == "always" or (mode == "full-tunnel" and full)
        peers, endpoint_ips, names = planning.peer_entries(cfg, resolved)
        hooks = planning.allowed_hooks(cfg, self.settings.allow_scripts, warnings)
        dns_servers = [str(a) for a in iface.dns]
        self.validation.check_dns(name, dns_servers)
        plan = Plan(
            name,
            name,
            key_bytes(iface.private_key),
            peers,
            [str(a) for a in iface.addresses],
            iface.mtu or planning.auto_mtu(self.platform.routing, endpoint_ips),
            routes_for(all_nets, table, full, fwmark),
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
        self.validation.check_conflicts(validation.footprint(plan))
        if owner != 0:
            self.validation.check_tables(owner, table, iface.fwmark if full else None)
        return plan

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

    # --- hooks ---------------------------------------------------------------------------------

    def run_hooks(self, name: str, ifname: str, commands: Sequence[str], when: str) -> None:
        """Run the ``when`` hooks of tunnel ``name`` (only when the administrator allows scripts);
        one that fails raises ``failed``."""
        if not commands or not self.settings.allow_scripts:
            return
        for cmd in commands:
            self.log.info(name, f"running {when} hook")
            status = self.platform.service.run_hook(cmd, ifname, 60)
            if status != 0:
                raise TunnelError("failed", f"{when} hook exited with {status}")

    def _run_recorded_hooks(self, tunnel: Tunnel, when: str) -> None:
        """The ``when`` hooks the journal of ``tunnel`` holds; a failure is only logged."""
        for e in tunnel.journal.entries:
            if e["kind"] == "hook" and e["when"] == when:
                try:
                    self.run_hooks(tunnel.name, tunnel.ifname, e["commands"], when)
                except (TunnelError, OSError, subprocess.SubprocessError) as err:
                    self.log.warning(tunnel.name, f"{when} hook failed: {err}")

    # --- undo ----------------------------------------------------------------------------------

    def undo(self, tunnel: Tunnel | None, journal: Journal, keep: frozenset[str] = frozenset()) -> None:
        """Undo ``journal`` newest first (entries of the kinds in ``keep`` stay); a failing undo is
        logged and the rest still undone."""
        name = journal.header.get("name")
        for entry in journal.newest_first():
            if entry["kind"] in keep:
                continue
            try:
                self.undo_entry(tunnel, entry)
            except Exception as e:
                self.log.error(name, f"undo of {entry['kind']} failed: {e}")

    def undo_entry(self, tunnel: Tunnel | None, e: Entry) -> None:
        """Undo one journal line: a record of the helper's (`bringup.UNDO`), else the OS backend's."""
        record = bringup.UNDO.load(e)
        if record is not None:
            bringup.UNDO.undo(record, bringup.Undoing(self, tunnel))
            return
        record = self.platform.load_record(e)
        if record is None:
            raise ValueError(f"unknown journal entry {e['kind']!r}")
        self.platform.undo(record)

    # --- engine exit, recovery, shutdown -------------------------------------------------------

    def engine_exited(self, engine: EngineProcess) -> None:
        """Called on the engine's watcher thread when it exits: its tunnel is ``failed`` (the kill
        switch, if any, keeps blocking)."""

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
        """Undo what a crashed helper left behind; keep blocking for tunnels that had a kill switch
        (`recovery`)."""
        with self._lock:
            recovery.recover(self)

    def shutdown(self) -> None:
        """Orderly stop (SIGTERM): every tunnel down, kill switches included — except with
        lockdown on, whose table stays so nothing leaks while the helper is stopped or restarting."""
        with self._lock:
            for name in list(self.tunnels):
                try:
                    self.down(name)
                except Exception as e:
                    self.log.error(name, f"down during shutdown failed: {e}")
            self.split_tunnel.close()
            self.lockdown.stop()

    def _publish(self, tunnel: Tunnel) -> None:
        self.events.publish(
            {"event": "state", "tunnel": tunnel.name, "state": tunnel.state, "message": tunnel.message},
            tunnel.owner,
        )


def _options(settings: Settings, state_dir: Path) -> PlatformOptions:
    """The OS backend's options from the administrator's settings."""
    return PlatformOptions(
        state_dir=state_dir,
        persistent_dir=Path(settings.persistent_dir),
        dns_backend=settings.dns_backend,
        resolv_conf=settings.resolv_conf,
        split_exclude_cgroup=settings.split_tunnel_cgroup,
        split_include_cgroup=settings.split_tunnel_include_cgroup,
        cgroup_root=settings.split_tunnel_cgroup_root,
        allow_split_tunnel=settings.allow_split_tunnel,
    )
