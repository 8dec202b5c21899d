"""The Linux backend: one module per concept, composed here into a `wgdesk.platforms.interface.Platform`.

| module | concept |
|---|---|
| `tun` | the TUN device: the one ``TUNSETIFF`` of wgdesk, the engine's batched I/O |
| `links` | the tunnel interface as the helper handles it (create, addresses, MTU, up, delete) |
| `iproute`, `netlink` | links, addresses, routes (netlink batches) and policy rules |
| `routing` | routes, the full tunnel's policy routing, the mark sysctl |
| `nft`, `firewall` | nftables (why ``nft``), wgdesk's scripts, the kill switch, the failsafe |
| `dns` | systemd-resolved, resolvconf, or a rewritten resolv.conf kept safe across a power loss |
| `cgroup` | per-application split tunnelling (cgroup v2 + nft ``socket cgroupv2``) |
| `identity`, `engine`, `service` | peers and processes; running an engine unprivileged; the systemd service |
| `network`, `autostart`, `diagnostics` | the app's view: the network, start at login, the bug report |

Concept modules are imported on first use, so the app (which asks for the network or start at login)
does not load the helper's networking code.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from functools import cached_property
from typing import TYPE_CHECKING, Any

from wgdesk.platforms.interface import Notes, PlatformOptions, SilentNotes
from wgdesk.undo import UndoRecord

if TYPE_CHECKING:
    from wgdesk.platforms.interface import (
        Autostart,
        ControlEndpoint,
        Diagnostics,
        Dns,
        EngineHost,
        EngineIO,
        Firewall,
        Identity,
        NetworkView,
        Routing,
        Service,
        SplitTunnel,
        TunDriver,
        TunnelDevices,
        UapiEndpoints,
    )

CONTROL_SOCKET = "/run/wgdesk/helper.sock"


class LinuxPlatform:
    """Linux, configured by the helper's ``options`` (defaults for the app and the engine)."""

    name = "linux"

    def __init__(self, options: PlatformOptions | None = None, notes: Notes | None = None) -> None:
        self.options = options or PlatformOptions()
        self.notes = notes or SilentNotes()

    @cached_property
    def tunnels(self) -> TunnelDevices:
        from wgdesk.platforms.linux.links import LinuxTunnelDevices

        return LinuxTunnelDevices()

    @cached_property
    def routing(self) -> Routing:
        from wgdesk.platforms.linux.routing import LinuxRouting

        return LinuxRouting()

    @cached_property
    def firewall(self) -> Firewall:
        from wgdesk.platforms.linux.firewall import LinuxFirewall

        return LinuxFirewall()

    @cached_property
    def dns(self) -> Dns:
        from wgdesk.platforms.linux.dns import LinuxDns

        return LinuxDns(self.options, self.notes)

    @cached_property
    def split(self) -> SplitTunnel:
        from wgdesk.platforms.linux.cgroup import LinuxSplitTunnel

        return LinuxSplitTunnel(self.options, self.notes)

    @cached_property
    def identity(self) -> Identity:
        from wgdesk.platforms.linux.identity import LinuxIdentity

        return LinuxIdentity()

    @cached_property
    def engine(self) -> EngineHost:
        from wgdesk.platforms.linux.engine import LinuxEngineHost

        return LinuxEngineHost()

    @cached_property
    def tun(self) -> TunDriver:
        from wgdesk.platforms.linux.tun import LinuxTunDriver

        return LinuxTunDriver()

    @cached_property
    def engine_io(self) -> EngineIO:
        from wgdesk.platforms.unix.engine_io import UnixEngineIO

        return UnixEngineIO()

    @cached_property
    def control(self) -> ControlEndpoint:
        from wgdesk.platforms.linux.identity import peer_credentials
        from wgdesk.platforms.unix.control import UnixControlEndpoint

        return UnixControlEndpoint(CONTROL_SOCKET, peer_credentials)

    @cached_property
    def uapi(self) -> UapiEndpoints:
        from wgdesk.platforms.unix.uapi import UnixUapiEndpoints

        return UnixUapiEndpoints()

    @cached_property
    def service(self) -> Service:
        from wgdesk.platforms.linux.service import LinuxService

        return LinuxService()

    @cached_property
    def network(self) -> NetworkView:
        from wgdesk.platforms.linux.network import LinuxNetworkView

        return LinuxNetworkView()

    @cached_property
    def autostart(self) -> Autostart:
        from wgdesk.platforms.linux.autostart import XdgAutostart

        return XdgAutostart()

    @cached_property
    def diagnostics(self) -> Diagnostics:
        from wgdesk.platforms.linux.diagnostics import LinuxDiagnostics

        return LinuxDiagnostics()

    def load_record(self, fields: Mapping[str, Any]) -> UndoRecord | None:
        from wgdesk.platforms.linux.records import RECORD_MODULES, REGISTRY

        for module in RECORD_MODULES:
            importlib.import_module(module)
        return REGISTRY.load(fields)

    def undo(self, record: UndoRecord) -> None:
        from wgdesk.platforms.linux.records import REGISTRY

        REGISTRY.undo(record, self)
