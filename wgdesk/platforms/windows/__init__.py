"""The Windows backend (issue 16; see docs/windows.md for what is built and what is verified).

Wired in: the engine's tunnel device on Wintun (`tun`); addresses, MTU, routes, the full tunnel's
metric and DNS by interface name (`devices`: `tunnels`, `routing`, `dns`); the WFP kill switch,
lockdown and failsafe block (`firewall` over `wfp_plan` and `wfp`); accounts as SID-derived ids
(`identity`) and the control pipe with the caller's token as its identity (`pipe_connection`); the
network we are on, start at login, diagnostics, the service's lock and hooks (`service`), and the
undo of this backend's own journal records.

The helper reaches an engine's UAPI pipe (`uapi`: `PipeUapiEndpoints`), but cannot create one for it
(`UapiEndpoints.listen` hands an engine a ``socket.socket``): the engine creates its own pipe, pins
its UDP to the physical interface and runs the pure-Python data path (`engine_io`). Engines are
started in the helper's kill-on-close job (`engine`: `engine_host`). The other parts still raise
`Unsupported` (their ``Missing*`` stand-ins below).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from wgdesk.platforms import unsupported as missing
from wgdesk.platforms.interface import (
    Autostart,
    ControlEndpoint,
    Diagnostics,
    DiagnosticSource,
    Dns,
    EngineHost,
    EngineIO,
    Firewall,
    NetworkView,
    Notes,
    PlatformOptions,
    Routing,
    Service,
    SilentNotes,
    SplitTunnel,
    TunDriver,
    TunnelDevices,
    UapiEndpoints,
)
from wgdesk.platforms.windows import dlls
from wgdesk.platforms.windows.autostart import RunKey
from wgdesk.platforms.windows.devices import WindowsDns, WindowsRouting, WindowsTunnelDevices
from wgdesk.platforms.windows.dns import DnsSettings, WinRegistry
from wgdesk.platforms.windows.engine_host import WindowsEngineHost
from wgdesk.platforms.windows.engine_io import WindowsEngineIO
from wgdesk.platforms.windows.firewall import WindowsFirewall
from wgdesk.platforms.windows.identity import LazyModule, WindowsIdentity
from wgdesk.platforms.windows.iphelper import IpHelper
from wgdesk.platforms.windows.network import WindowsNetworkView
from wgdesk.platforms.windows.pipe_connection import PipeControlEndpoint, PipeUapiEndpoints
from wgdesk.platforms.windows.records import REGISTRY
from wgdesk.platforms.windows.service import WindowsService
from wgdesk.platforms.windows.tun import WintunDriver
from wgdesk.platforms.windows.uninstall import engine_executable
from wgdesk.undo import UndoRecord


class WindowsDiagnostics:
    """What the diagnostics bundle collects of a Windows machine's network."""

    def sources(self) -> tuple[DiagnosticSource, ...]:
        return (
            DiagnosticSource(
                "network/ipconfig.txt", "`ipconfig /all`: adapters, addresses, DNS", ("ipconfig", "/all")
            ),
            DiagnosticSource("network/route-print.txt", "`route print`: routes", ("route", "print")),
        )


class WindowsPlatform(missing.MissingRecords):
    """Windows."""

    name = "win32"

    def __init__(self, options: PlatformOptions | None = None, notes: Notes | None = None) -> None:
        super().__init__("win32")
        self.options = options or PlatformOptions()
        self.notes = notes or SilentNotes()
        self._ip: IpHelper | None = None
        self._dns: DnsSettings | None = None
        self.tunnels = WindowsTunnelDevices(self)
        self.routing = WindowsRouting(self)
        self.dns = WindowsDns(self)
        self.identity = WindowsIdentity(
            LazyModule("win32security"), LazyModule("win32api"), LazyModule("win32process")
        )
        self.control = PipeControlEndpoint(self.identity)
        self.engine_io = WindowsEngineIO(lambda: self.ip)
        self.firewall = WindowsFirewall(self, engine_executable())

    @property
    def ip(self) -> IpHelper:
        """The IP Helper API (loaded on first use)."""
        if self._ip is None:
            self._ip = IpHelper.load()
        return self._ip

    @property
    def dns_settings(self) -> DnsSettings:
        if self._dns is None:
            self._dns = DnsSettings(dlls.load("iphlpapi"), WinRegistry())
        return self._dns

    def load_record(self, fields: Mapping[str, Any]) -> UndoRecord | None:
        """One of `iphelper`'s or `dns`'s records (both imported above, so registered)."""
        return REGISTRY.load(fields)

    def undo(self, record: UndoRecord) -> None:
        REGISTRY.undo(record, self)

    tunnels: TunnelDevices
    routing: Routing
    firewall: Firewall
    dns: Dns
    split: SplitTunnel = missing.MissingSplitTunnel("win32")
    identity: WindowsIdentity
    engine: EngineHost = WindowsEngineHost()
    tun: TunDriver = WintunDriver()
    engine_io: EngineIO
    control: ControlEndpoint
    uapi: UapiEndpoints = PipeUapiEndpoints()
    service: Service = WindowsService()
    network: NetworkView = WindowsNetworkView()
    autostart: Autostart = RunKey()
    diagnostics: Diagnostics = WindowsDiagnostics()
