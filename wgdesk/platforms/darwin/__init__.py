"""The macOS backend: the network we are on, start at login and the UNIX sockets are here; the rest
raises `Unsupported` until issue 15 (utun, routes, pf, networksetup DNS, LaunchDaemon).

To implement a part, replace its ``Missing*`` stand-in below with a class of this package that
satisfies the Protocol of `wgdesk.platforms.interface` (mypy checks it against the property's type);
records a part journals through a `Recorder` go into a `wgdesk.undo.Registry` of this backend, which
`load_record` and `undo` then use. The helper does not change.
"""

from __future__ import annotations

from functools import cached_property

from wgdesk.platforms import unsupported as missing
from wgdesk.platforms.darwin.autostart import LaunchAgent
from wgdesk.platforms.darwin.network import DarwinNetworkView
from wgdesk.platforms.interface import (
    Autostart,
    ControlEndpoint,
    Diagnostics,
    DiagnosticSource,
    Dns,
    EngineHost,
    EngineIO,
    Firewall,
    Identity,
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
from wgdesk.platforms.unix.engine_io import UnixEngineIO

CONTROL_SOCKET = "/var/run/wgdesk/helper.sock"


class DarwinDiagnostics:
    """What the diagnostics bundle collects of a Mac's network."""

    def sources(self) -> tuple[DiagnosticSource, ...]:
        return (
            DiagnosticSource("network/ifconfig.txt", "`ifconfig -a`: interfaces", ("ifconfig", "-a")),
            DiagnosticSource("network/netstat-rn.txt", "`netstat -rn`: routes", ("netstat", "-rn")),
            DiagnosticSource("network/resolv.conf", "/etc/resolv.conf", path="/etc/resolv.conf"),
        )


class DarwinPlatform(missing.MissingRecords):
    """macOS."""

    name = "darwin"

    def __init__(self, options: PlatformOptions | None = None, notes: Notes | None = None) -> None:
        super().__init__("darwin")
        self.options = options or PlatformOptions()
        self.notes = notes or SilentNotes()

    tunnels: TunnelDevices = missing.MissingTunnelDevices("darwin")
    routing: Routing = missing.MissingRouting("darwin")
    firewall: Firewall = missing.MissingFirewall("darwin")
    dns: Dns = missing.MissingDns("darwin")
    split: SplitTunnel = missing.MissingSplitTunnel("darwin")
    identity: Identity = missing.MissingIdentity("darwin")
    engine: EngineHost = missing.MissingEngineHost("darwin")
    tun: TunDriver = missing.MissingTunDriver("darwin")
    engine_io: EngineIO = UnixEngineIO()
    service: Service = missing.MissingService("darwin")
    network: NetworkView = DarwinNetworkView()
    autostart: Autostart = LaunchAgent()
    diagnostics: Diagnostics = DarwinDiagnostics()

    @cached_property
    def control(self) -> ControlEndpoint:
        """The socket is a UNIX socket as on Linux; who connected (``LOCAL_PEERCRED``) comes with
        issue 15."""
        from wgdesk.platforms.unix.control import UnixControlEndpoint

        return UnixControlEndpoint(CONTROL_SOCKET, missing.MissingControlEndpoint("darwin").peer)

    @cached_property
    def uapi(self) -> UapiEndpoints:
        from wgdesk.platforms.unix.uapi import UnixUapiEndpoints

        return UnixUapiEndpoints()
