"""The Windows backend: the network we are on and start at login are here; the rest raises
`Unsupported` until issue 16 (Wintun, IP Helper routes, WFP, the named pipe
``\\\\.\\pipe\\wgdesk-helper`` with the client's token as its identity, the Windows service).

To implement a part, replace its ``Missing*`` stand-in below with a class of this package that
satisfies the Protocol of `wgdesk.platforms.interface`: the control endpoint, for one, is a
`ControlEndpoint` whose `Listener.accept` returns a pipe wrapper with ``recv``/``sendall``/
``settimeout``/``close`` (a `Connection`) and whose ``peer`` reads the client's token. The helper does
not change.
"""

from __future__ import annotations

from wgdesk.platforms import unsupported as missing
from wgdesk.platforms.interface import (
    Autostart,
    ControlEndpoint,
    Diagnostics,
    DiagnosticSource,
    Dns,
    EngineHost,
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
from wgdesk.platforms.windows.autostart import RunKey
from wgdesk.platforms.windows.network import WindowsNetworkView


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

    tunnels: TunnelDevices = missing.MissingTunnelDevices("win32")
    routing: Routing = missing.MissingRouting("win32")
    firewall: Firewall = missing.MissingFirewall("win32")
    dns: Dns = missing.MissingDns("win32")
    split: SplitTunnel = missing.MissingSplitTunnel("win32")
    identity: Identity = missing.MissingIdentity("win32")
    engine: EngineHost = missing.MissingEngineHost("win32")
    tun: TunDriver = missing.MissingTunDriver("win32")
    control: ControlEndpoint = missing.MissingControlEndpoint("win32")
    uapi: UapiEndpoints = missing.MissingUapiEndpoints("win32")
    service: Service = missing.MissingService("win32")
    network: NetworkView = WindowsNetworkView()
    autostart: Autostart = RunKey()
    diagnostics: Diagnostics = WindowsDiagnostics()
