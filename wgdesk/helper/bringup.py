"""Bring-up as the ordered list of steps it is (`STEPS`), each step beside the undo of what it records.

`TunnelManager.up` plans first (`wgdesk.helper.planning`), then `run` carries the plan out step by
step, as wireguard-windows' ``tunnel/service.go`` does. Every step journals a record (`records`)
*before* its change, so that a failure at any point — or a crash of the helper — is rolled back
from the journal, newest first: the function registered in `UNDO` for each record type is written
right after the step that records it. Records the OS backend makes itself (the interface, policy
rules, nft tables, DNS) are undone by the backend (`wgdesk.platforms.interface.Platform.undo`).

The order matters, and says why where it is not obvious: the full tunnel's packet filter before
the engine has peers; the kill switch before addresses and routes (no moment without a block);
PostUp hooks last.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from ipaddress import ip_network
from typing import TYPE_CHECKING, Protocol

from wgdesk.helper.engine_process import EngineError, kill_recorded, start_engine, uapi_listener, uapi_path
from wgdesk.helper.records import (
    AddressAdded,
    BypassOn,
    EngineStarted,
    Hook,
    IncludeOn,
    KillSwitchOn,
    MtuLowered,
    RouteAdded,
    RoutesAdded,
    SettingChanged,
    UapiSocket,
)
from wgdesk.helper.state import TunnelState
from wgdesk.platforms.interface import KillSwitchMember
from wgdesk.undo import Registry

if TYPE_CHECKING:
    from wgdesk.helper.engine_process import EngineProcess
    from wgdesk.helper.journal import Entry, Journal
    from wgdesk.helper.lockdown import Lockdown
    from wgdesk.helper.logbook import LogBook
    from wgdesk.helper.planning import Plan, Route
    from wgdesk.helper.settings import Settings
    from wgdesk.helper.state import Tunnel
    from wgdesk.platforms.interface import Platform
    from wgdesk.undo import UndoRecord


class TunnelManager(Protocol):
    """What the steps and the undo of the helper's records use of `wgdesk.helper.tunnels.TunnelManager`
    (a Protocol, so that this module does not import the manager that imports it)."""

    settings: Settings
    platform: Platform
    log: LogBook
    kill_switch: dict[str, KillSwitchMember]
    lockdown: Lockdown

    def _hooks(self, name: str, ifname: str, commands: Sequence[str], when: str) -> None: ...
    def _recorder(self, journal: Journal) -> Callable[[UndoRecord], None]: ...
    def _engine_exited(self, engine: EngineProcess) -> None: ...
    def _apply_kill_switch(self) -> None: ...
    def _configure_engine(self, plan: Plan, tunnel: Tunnel, takes_fds: bool) -> None: ...
    def _add_routes(self, tunnel: Tunnel, routes: Sequence[Route]) -> list[Entry]: ...
    def _full_tunnel(self, plan: Plan, j: Journal) -> None: ...
    def _full_tunnel_firewall(self, plan: Plan, j: Journal) -> None: ...
    def _bypass(self, plan: Plan, tunnel: Tunnel) -> None: ...
    def _include(self, plan: Plan, tunnel: Tunnel) -> None: ...
    def _set_dns(self, plan: Plan, tunnel: Tunnel) -> None: ...
    def _restore_sysctl(self, tunnel: Tunnel | None, e: SettingChanged) -> None: ...


@dataclass(frozen=True)
class Undoing:
    """What undoing one of the helper's records needs: the manager, and the live tunnel whose
    journal it is (None when recovering a crashed helper's journal)."""

    manager: TunnelManager
    tunnel: Tunnel | None


UNDO: Registry[Undoing] = Registry("helper")
"""The helper's records (`wgdesk.helper.records`) and how each is undone."""


@dataclass(frozen=True)
class Step:
    """One named step of a bring-up; ``when`` says whether the plan needs it."""

    name: str
    do: Callable[[TunnelManager, Plan, Tunnel], None]
    when: Callable[[Plan], bool] = lambda plan: True


# --- hooks -------------------------------------------------------------------------------------


def pre_up(m: TunnelManager, plan: Plan, tunnel: Tunnel) -> None:
    """Journal the PostDown hook first (a rollback after PreUp does not run it: see `_post_down`),
    then run PreUp."""
    if plan.hooks.get("PostDown"):
        tunnel.journal.add(Hook("PostDown", tuple(plan.hooks["PostDown"])))
    m._hooks(plan.name, plan.ifname, plan.hooks.get("PreUp", ()), "PreUp")


def post_up(m: TunnelManager, plan: Plan, tunnel: Tunnel) -> None:
    """Journal PreDown (``down`` runs it before undoing), then run PostUp."""
    if plan.hooks.get("PreDown"):
        tunnel.journal.add(Hook("PreDown", tuple(plan.hooks["PreDown"])))
    m._hooks(plan.name, plan.ifname, plan.hooks.get("PostUp", ()), "PostUp")


@UNDO.undoes(Hook)
def _post_down(r: Hook, u: Undoing) -> None:
    """PostDown runs on a real ``down`` only (not on a rollback or a recovery)."""
    tunnel = u.tunnel
    if r.when == "PostDown" and tunnel is not None and tunnel.state == TunnelState.STOPPING:
        u.manager._hooks(tunnel.name, tunnel.ifname, r.commands, "PostDown")


# --- interface and engine ----------------------------------------------------------------------


def interface_and_engine(m: TunnelManager, plan: Plan, tunnel: Tunnel) -> None:
    """Create the TUN device (the backend journals it), the UAPI socket and (for wgdesk-engine) the
    UDP sockets, and start the engine unprivileged with them; our copies are closed either way."""
    j = tunnel.journal
    ifname = plan.ifname
    takes_fds = m.settings.engine_takes_udp_fds()
    device = m.platform.tunnels.create(
        ifname, packet_info=not takes_fds, offload=takes_fds, record=m._recorder(j)
    )
    tun_fd = device.handle
    sockets: list[socket.socket] = []
    try:
        j.add(UapiSocket(str(uapi_path(ifname))))
        listener = uapi_listener(ifname)
        sockets.append(listener)
        udp_fds: list[int | None] | None = None
        if takes_fds:
            s4, s6, port = m.platform.engine.bind_udp(plan.listen_port, plan.fwmark)
            udp_fds = [None if s is None else s.fileno() for s in (s4, s6)]
            sockets += [s for s in (s4, s6) if s is not None]
            tunnel.listen_port = port
        engine = start_engine(
            m.settings.engine_executable(),
            ifname,
            m.settings.engine_account(),
            tun_fd,
            listener.fileno(),
            udp_fds,
            m.log,
            plan.name,
            m._engine_exited,
        )
        j.add(EngineStarted(engine.pid, engine.start_time))
        tunnel.engine = engine
    finally:
        os.close(tun_fd)
        for s in sockets:
            s.close()


@UNDO.undoes(UapiSocket)
def _remove_uapi_socket(r: UapiSocket, u: Undoing) -> None:
    u.manager.platform.uapi.remove(r.path)


@UNDO.undoes(EngineStarted)
def _stop_engine(r: EngineStarted, u: Undoing) -> None:
    engine = u.tunnel.engine if u.tunnel is not None else None
    if engine is not None and engine.pid == r.pid:
        engine.stop()
    else:
        kill_recorded(int(r.pid), r.start_time)


def full_tunnel_firewall(m: TunnelManager, plan: Plan, tunnel: Tunnel) -> None:
    """Before the engine has peers: the first initiation may leave as soon as the link is up (the
    kernel's own IPv6 packets on a new link trigger it), and its connection must already carry the
    conntrack mark, or strict rp_filter drops the response (5 s until the retry)."""
    m._full_tunnel_firewall(plan, tunnel.journal)


def configure_engine(m: TunnelManager, plan: Plan, tunnel: Tunnel) -> None:
    m._configure_engine(plan, tunnel, m.settings.engine_takes_udp_fds())


# --- kill switch -------------------------------------------------------------------------------


def kill_switch(m: TunnelManager, plan: Plan, tunnel: Tunnel) -> None:
    """Before addresses and routes: there is no moment in which the tunnel's traffic is not blocked
    elsewhere. A tunnel without kill switch of its own is let out under lockdown, and one that was
    left blocking (brought up again without kill switch) stops blocking now that the engine runs (a
    rollback puts the block back)."""
    if plan.kill_switch:
        member = KillSwitchMember(plan.name, plan.ifname, plan.fwmark, tunnel.listen_port)
        tunnel.journal.add(KillSwitchOn(plan.ifname, plan.fwmark, tunnel.listen_port))
        m.kill_switch[plan.name] = member
        m._apply_kill_switch()
    elif plan.name in m.kill_switch:
        m.kill_switch.pop(plan.name)
        m._apply_kill_switch()
    elif m.lockdown.enabled:
        m._apply_kill_switch()


@UNDO.undoes(KillSwitchOn)
def _leave_kill_switch(r: KillSwitchOn, u: Undoing) -> None:
    if u.tunnel is not None:
        u.manager.kill_switch.pop(u.tunnel.name, None)
    u.manager._apply_kill_switch()


# --- addresses, MTU, routes --------------------------------------------------------------------


def addresses(m: TunnelManager, plan: Plan, tunnel: Tunnel) -> None:
    for address in plan.addresses:
        tunnel.journal.add(AddressAdded(plan.ifname, address))
    m.platform.tunnels.add_addresses(plan.ifname, plan.addresses)
    m.platform.tunnels.configure(plan.ifname, mtu=plan.mtu, up=True)


@UNDO.undoes(AddressAdded)
def _delete_address(r: AddressAdded, u: Undoing) -> None:
    tunnels = u.manager.platform.tunnels
    if tunnels.exists(r.ifname):
        tunnels.delete_addresses(r.ifname, [r.address])


@UNDO.undoes(MtuLowered)
def _restore_mtu(r: MtuLowered, u: Undoing) -> None:
    """The MTU a probe lowered after bring-up (`TunnelManager.probe_mtu`)."""
    tunnels = u.manager.platform.tunnels
    if tunnels.exists(r.ifname):
        tunnels.configure(r.ifname, mtu=int(r.old))


def routes(m: TunnelManager, plan: Plan, tunnel: Tunnel) -> None:
    """One batch per table (`TunnelManager._add_routes`; a live update adds and removes the same way)."""
    m._add_routes(tunnel, plan.routes)


@UNDO.undoes(RoutesAdded)
def _delete_routes(r: RoutesAdded, u: Undoing) -> None:
    if u.manager.platform.tunnels.exists(r.ifname):
        u.manager.platform.routing.delete_routes(r.ifname, [ip_network(d) for d in r.dsts], r.table)


@UNDO.undoes(RouteAdded)
def _delete_route(r: RouteAdded, u: Undoing) -> None:
    if u.manager.platform.tunnels.exists(r.ifname):
        u.manager.platform.routing.delete_routes(r.ifname, [ip_network(r.dst)], r.table)


# --- full tunnel, split tunnelling -------------------------------------------------------------


def full_tunnel(m: TunnelManager, plan: Plan, tunnel: Tunnel) -> None:
    """The policy routing that sends everything else through the tunnel (the backend journals it)."""
    m._full_tunnel(plan, tunnel.journal)


@UNDO.undoes(SettingChanged)
def _restore_setting(r: SettingChanged, u: Undoing) -> None:
    """A machine setting the full tunnel or the include mark needed (`_mark_settings`)."""
    u.manager._restore_sysctl(u.tunnel, r)


def bypass(m: TunnelManager, plan: Plan, tunnel: Tunnel) -> None:
    """Excluded apps around this full tunnel (when allowed and possible; records `BypassOn`)."""
    m._bypass(plan, tunnel)


@UNDO.undoes(BypassOn)
def _bypass_off(r: BypassOn, u: Undoing) -> None:
    if u.tunnel is not None and u.tunnel.bypass:
        u.tunnel.bypass = False
        _refilter(u.manager)


def include(m: TunnelManager, plan: Plan, tunnel: Tunnel) -> None:
    """Included apps only through this tunnel (records `IncludeOn`)."""
    m._include(plan, tunnel)


@UNDO.undoes(IncludeOn)
def _include_off(r: IncludeOn, u: Undoing) -> None:
    if u.tunnel is not None and u.tunnel.include_mark:
        u.tunnel.include_mark = 0
        _refilter(u.manager)


def _refilter(m: TunnelManager) -> None:
    """The kill switch lets split-tunnelled apps out by this tunnel's rules: apply it without them."""
    if m.kill_switch or m.lockdown.enabled:
        m._apply_kill_switch()


# --- DNS, the end ------------------------------------------------------------------------------


def dns(m: TunnelManager, plan: Plan, tunnel: Tunnel) -> None:
    """The config's DNS servers and search domains (the backend journals how to revert them)."""
    m._set_dns(plan, tunnel)


def engine_alive(m: TunnelManager, plan: Plan, tunnel: Tunnel) -> None:
    """An engine that exited meanwhile (a bad config it refused late) fails the bring-up."""
    if tunnel.engine is not None and not tunnel.engine.alive():
        raise EngineError("the engine exited during bring-up")


STEPS: tuple[Step, ...] = (
    Step("PreUp hooks", pre_up),
    Step("interface and engine", interface_and_engine),
    Step("full-tunnel packet filter", full_tunnel_firewall, lambda plan: plan.full_tunnel),
    Step("engine configuration", configure_engine),
    Step("kill switch", kill_switch),
    Step("addresses and MTU", addresses),
    Step("routes", routes),
    Step("full-tunnel routing", full_tunnel, lambda plan: plan.full_tunnel),
    Step("excluded apps", bypass, lambda plan: plan.full_tunnel),
    Step("included apps", include, lambda plan: not plan.full_tunnel and bool(plan.include_families)),
    Step("DNS", dns, lambda plan: bool(plan.dns_servers or plan.dns_search)),
    Step("PostUp hooks", post_up),
    Step("engine still running", engine_alive),
)
"""A bring-up, in order."""


def run(m: TunnelManager, plan: Plan, tunnel: Tunnel) -> None:
    """Every step ``plan`` needs, in order; the first failure propagates (the caller rolls back)."""
    for step in STEPS:
        if step.when(plan):
            step.do(m, plan, tunnel)
