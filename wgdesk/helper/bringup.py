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

from wgdesk import uapi
from wgdesk.helper import mark_settings
from wgdesk.helper.engine_process import (
    EngineError,
    EngineProcess,
    await_engine,
    kill_recorded,
    start_engine,
    uapi_get,
    uapi_listener,
    uapi_path,
    uapi_request,
)
from wgdesk.helper.planning import by_table
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
from wgdesk.platforms.interface import FullTunnel, KillSwitchMember
from wgdesk.proto.changes import DeviceChange, PeerChange
from wgdesk.undo import Registry

if TYPE_CHECKING:
    from wgdesk.helper.journal import Entry
    from wgdesk.helper.lockdown import LockdownController
    from wgdesk.helper.logbook import LogBook
    from wgdesk.helper.planning import Plan, Route
    from wgdesk.helper.settings import Settings
    from wgdesk.helper.split_tunnel import SplitTunnels
    from wgdesk.helper.state import Tunnel
    from wgdesk.platforms.interface import Platform, Routing


class TunnelManager(Protocol):
    """What the steps and the undo of the helper's records use of `wgdesk.helper.tunnels.TunnelManager`
    (a Protocol, so that this module does not import the manager that imports it): its public parts
    only — the controllers it delegates to, never its internals."""

    settings: Settings
    platform: Platform
    log: LogBook
    tunnels: dict[str, Tunnel]
    lockdown: LockdownController
    split_tunnel: SplitTunnels

    def run_hooks(self, name: str, ifname: str, commands: Sequence[str], when: str) -> None: ...
    def engine_exited(self, engine: EngineProcess) -> None: ...


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
    m.run_hooks(plan.name, plan.ifname, plan.hooks.get("PreUp", ()), "PreUp")


def post_up(m: TunnelManager, plan: Plan, tunnel: Tunnel) -> None:
    """Journal PreDown (``down`` runs it before undoing), then run PostUp."""
    if plan.hooks.get("PreDown"):
        tunnel.journal.add(Hook("PreDown", tuple(plan.hooks["PreDown"])))
    m.run_hooks(plan.name, plan.ifname, plan.hooks.get("PostUp", ()), "PostUp")


@UNDO.undoes(Hook)
def _post_down(r: Hook, u: Undoing) -> None:
    """PostDown runs on a real ``down`` only (not on a rollback or a recovery)."""
    tunnel = u.tunnel
    if r.when == "PostDown" and tunnel is not None and tunnel.state == TunnelState.STOPPING:
        u.manager.run_hooks(tunnel.name, tunnel.ifname, r.commands, "PostDown")


# --- interface and engine ----------------------------------------------------------------------


def interface_and_engine(m: TunnelManager, plan: Plan, tunnel: Tunnel) -> None:
    """The tunnel device and its engine, made by whoever the platform lets make the device: the
    helper, which hands it to the engine (Linux, macOS), or the engine itself (Windows:
    `wgdesk.platforms.interface.TunnelDevices.made_by_engine`). Either way the name the kernel gives
    the device becomes ``plan.ifname`` and ``tunnel.ifname``, which every later step uses for what it
    changes in the kernel; the tunnel's name stays its identity: journal, log, status, events,
    kill-switch member."""
    if m.platform.tunnels.made_by_engine:
        engine_makes_interface(m, plan, tunnel)
    else:
        helper_makes_interface(m, plan, tunnel)


def helper_makes_interface(m: TunnelManager, plan: Plan, tunnel: Tunnel) -> None:
    """Create the TUN device (the backend journals it), the UAPI socket and (for wgdesk-engine) the
    UDP sockets, and start the engine unprivileged with them; our copies are closed either way.

    The device is asked for by the tunnel's name; the kernel's name for it is ``utunN`` on macOS,
    the same on Linux. The UAPI socket is named after the device too: an engine handed the device
    names its socket after it (wireguard-go watches ``/var/run/wireguard/IFNAME.sock`` and exits when
    that is not its socket), and ``wg show NAME`` on macOS finds ``utunN.sock`` through the backend's
    ``NAME.name`` record, as with wg-quick."""
    j = tunnel.journal
    takes_fds = _takes_udp_fds(m)
    device = m.platform.tunnels.create(
        plan.name, packet_info=not takes_fds, offload=takes_fds, record=j.recorder()
    )
    plan.ifname = tunnel.ifname = ifname = device.name
    j.update_header(ifname=ifname)
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
        account = m.settings.engine_account()
        _start(m, plan, tunnel, ifname, account, tun_fd, listener.fileno(), udp_fds)
    finally:
        os.close(tun_fd)
        for s in sockets:
            s.close()


def engine_makes_interface(m: TunnelManager, plan: Plan, tunnel: Tunnel) -> None:
    """Start the engine with nothing (``-f NAME``: it creates the device, its UAPI endpoint and its
    UDP sockets, all named after the tunnel), then wait — bounded, an exit noticed — for the UAPI
    endpoint (`UapiEndpoints.ready`; the engine makes its device before it) and for the device
    (`TunnelDevices.find`, which gives its kernel name). Only `EngineStarted` is journalled: the
    device and the endpoint go with the engine (Windows: Wintun removes the adapter, the pipe closes)."""
    platform = m.platform
    engine = _start(m, plan, tunnel, plan.name, "", None, None, None)  # as the service's own account
    endpoint = platform.uapi.path(plan.name)
    try:
        await_engine(engine, f"its UAPI endpoint {endpoint}", lambda: platform.uapi.ready(plan.name) or None)
        ifname = await_engine(engine, f"its interface {plan.name}", lambda: _found(platform, plan.name))
    except EngineError as e:
        exited = _last_words(m, plan, engine)
        if exited is None:
            raise
        raise exited from e
    plan.ifname = tunnel.ifname = ifname
    tunnel.journal.update_header(ifname=ifname)


def _found(platform: Platform, name: str) -> str | None:
    try:
        return platform.tunnels.find(name)
    except FileNotFoundError:
        return None


def _start(
    m: TunnelManager,
    plan: Plan,
    tunnel: Tunnel,
    ifname: str,
    account: str,
    tun_fd: int | None,
    uapi_fd: int | None,
    udp_fds: list[int | None] | None,
) -> EngineProcess:
    """Start the engine and journal it (`EngineStarted`: its undo stops it)."""
    engine = start_engine(
        m.settings.engine_executable(),
        ifname,
        account,
        tun_fd,
        uapi_fd,
        udp_fds,
        m.log,
        plan.name,
        m.engine_exited,
    )
    tunnel.journal.add(EngineStarted(engine.pid, engine.start_time))
    tunnel.engine = engine
    return engine


def _takes_udp_fds(m: TunnelManager) -> bool:
    """Whether the helper binds the engine's UDP sockets (wgdesk-engine on a platform where the helper
    makes the device); otherwise the engine binds them, by UAPI ``listen_port`` and ``fwmark``."""
    return m.settings.engine_takes_udp_fds() and not m.platform.tunnels.made_by_engine


def _last_words(m: TunnelManager, plan: Plan, engine: EngineProcess) -> EngineError | None:
    """When the engine has exited (within a second): its status and last lines of output."""
    if not engine.exited.wait(1.0):
        return None
    tail = [r["message"] for r in m.log.records(plan.name) if r["source"] == "engine"][-3:]
    return EngineError(
        f"the engine exited with status {engine.proc.returncode}" + (": " + " / ".join(tail) if tail else "")
    )


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
    mark_settings.set_for(m.platform.routing, plan.default_families, tunnel.journal)
    m.platform.firewall.full_tunnel_on(_full(m, plan), tunnel.journal.recorder())


def _full(m: TunnelManager, plan: Plan) -> FullTunnel:
    return FullTunnel(
        plan.ifname,
        plan.fwmark,
        tuple(plan.addresses),
        frozenset(plan.default_families),
        m.lockdown.lan,
        tuple(plan.endpoint_ips),  # macOS routes each outside the tunnel (no policy routing)
    )


def configure_engine(m: TunnelManager, plan: Plan, tunnel: Tunnel) -> None:
    """The private key, listening port and mark (unless the engine was given its sockets) and every
    peer, in one UAPI set; an engine that exits on it is reported with its last words."""
    from wgdesk.config import key_bytes

    takes_fds = _takes_udp_fds(m)
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
        fwmark=None if takes_fds or m.platform.tunnels.made_by_engine else plan.fwmark,  # pinned, not marked
        replace_peers=True,
        peers=peers,
    )
    engine = tunnel.engine
    alive = engine.alive if engine is not None else None
    try:
        uapi_request(plan.ifname, uapi.format_set(change), alive=alive)
    except EngineError as e:
        exited = None if engine is None else _last_words(m, plan, engine)
        if exited is None:
            raise
        raise exited from e
    device = uapi_get(plan.ifname)
    if not takes_fds:
        tunnel.listen_port = int(device.get("listen_port", 0))


# --- kill switch -------------------------------------------------------------------------------


def kill_switch(m: TunnelManager, plan: Plan, tunnel: Tunnel) -> None:
    """Before addresses and routes: there is no moment in which the tunnel's traffic is not blocked
    elsewhere. A tunnel without kill switch of its own is let out under lockdown, and one that was
    left blocking (brought up again without kill switch) stops blocking now that the engine runs (a
    rollback puts the block back)."""
    if plan.kill_switch:
        member = KillSwitchMember(plan.name, plan.ifname, plan.fwmark, tunnel.listen_port)
        tunnel.journal.add(KillSwitchOn(plan.ifname, plan.fwmark, tunnel.listen_port))
        m.lockdown.members[plan.name] = member
        m.lockdown.apply()
    elif plan.name in m.lockdown.members:
        m.lockdown.members.pop(plan.name)
        m.lockdown.apply()
    elif m.lockdown.enabled:
        m.lockdown.apply()


@UNDO.undoes(KillSwitchOn)
def _leave_kill_switch(r: KillSwitchOn, u: Undoing) -> None:
    if u.tunnel is not None:
        u.manager.lockdown.members.pop(u.tunnel.name, None)
    u.manager.lockdown.apply()


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
    """One batch per table (`add_routes`; a live update adds and removes the same way)."""
    add_routes(m.platform.routing, tunnel, plan.routes)


def add_routes(routing: Routing, tunnel: Tunnel, routes: Sequence[Route]) -> list[Entry]:
    """Journal and add ``routes`` through the tunnel, one netlink batch per table; returns the
    journal entries (each recorded before its routes go in)."""
    entries = []
    for table_name, dsts in by_table(routes).items():
        entries.append(
            tunnel.journal.add(RoutesAdded(tunnel.ifname, table_name, tuple(str(d) for d in dsts)))
        )
        routing.add_routes(tunnel.ifname, dsts, table_name)
    return entries


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
    m.platform.routing.full_tunnel_on(_full(m, plan), tunnel.journal.recorder())


@UNDO.undoes(SettingChanged)
def _restore_setting(r: SettingChanged, u: Undoing) -> None:
    """A machine setting the full tunnel or the include mark needed (`mark_settings`)."""
    mark_settings.restore(u.manager.platform.routing, list(u.manager.tunnels.values()), u.tunnel, r)


def bypass(m: TunnelManager, plan: Plan, tunnel: Tunnel) -> None:
    """Excluded apps around this full tunnel (when allowed and possible; records `BypassOn`)."""
    m.split_tunnel.bypass(plan, tunnel)


@UNDO.undoes(BypassOn)
def _bypass_off(r: BypassOn, u: Undoing) -> None:
    if u.tunnel is not None and u.tunnel.bypass:
        u.tunnel.bypass = False
        _refilter(u.manager)


def include(m: TunnelManager, plan: Plan, tunnel: Tunnel) -> None:
    """Included apps only through this tunnel (records `IncludeOn`)."""
    m.split_tunnel.include(plan, tunnel)


@UNDO.undoes(IncludeOn)
def _include_off(r: IncludeOn, u: Undoing) -> None:
    if u.tunnel is not None and u.tunnel.include_mark:
        u.tunnel.include_mark = 0
        _refilter(u.manager)


def _refilter(m: TunnelManager) -> None:
    """The kill switch lets split-tunnelled apps out by this tunnel's rules: apply it without them."""
    m.lockdown.refilter()


# --- DNS, the end ------------------------------------------------------------------------------


def dns(m: TunnelManager, plan: Plan, tunnel: Tunnel) -> None:
    """The config's DNS servers and search domains (the backend journals how to revert them)."""
    dns = m.platform.dns
    tunnel.dns_file = dns.exclusive
    dns.set(plan.ifname, plan.dns_servers, plan.dns_search, tunnel.journal.recorder())


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
