"""The macOS backend (issue 15). Nothing of it has run on a Mac yet: it is verified by the tests
under ``tests/darwin`` (a utun stand-in against wireguard-go, golden commands, a fake Mac that runs
them) and by ``scripts/verify-macos`` once someone runs that on real hardware (docs/macos.md).

| module | concept |
|---|---|
| `utun` | the utun device: created by the helper, the engine's I/O on it (4-byte header) |
| `ifconfig` | the interface's addresses, MTU and state; the ``NAME.name`` record |
| `routes` | routes, the full tunnel (halves + endpoint host routes) |
| `dns` | DNS in the dynamic store (``scutil``), re-asserted when configd rewrites it |
| `pf` | kill switch, full-tunnel guard (CVE-2019-14899) and failsafe as pf anchors |
| `peercred` | who connected to the control socket (``LOCAL_PEERCRED``, ``LOCAL_PEERPID``) |
| `engine` | the engine's UDP sockets and its unprivileged start |
| `socketowner` | the engine's UDP sockets created as its own account, so pf can match them by user |
| `boundif` | the engine's UDP tied to the physical interface (``IP_BOUND_IF``), again after network changes |
| `service` | the helper as a LaunchDaemon |
| `identity` | accounts, process start times |
| `network`, `autostart` | the network we are on; start at login (LaunchAgent) |

Split tunnelling by application does not exist on macOS here (no cgroups, no packet marks).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cached_property
from importlib import import_module
from pathlib import Path
from typing import Any

from wgdesk.platforms import unsupported as missing
from wgdesk.platforms.darwin.autostart import LaunchAgent
from wgdesk.platforms.darwin.dns import ScutilDns
from wgdesk.platforms.darwin.engine import DarwinEngineHost, DarwinEngineIO
from wgdesk.platforms.darwin.identity import DarwinIdentity
from wgdesk.platforms.darwin.ifconfig import DarwinTunnelDevices
from wgdesk.platforms.darwin.netwatch import NetworkWatch
from wgdesk.platforms.darwin.network import DarwinNetworkView
from wgdesk.platforms.darwin.pf import BOOT_RULES, PfFirewall
from wgdesk.platforms.darwin.records import RECORD_MODULES, REGISTRY
from wgdesk.platforms.darwin.routes import DarwinRouting
from wgdesk.platforms.darwin.runner import Runner, system_runner
from wgdesk.platforms.darwin.service import PATHS, DarwinService
from wgdesk.platforms.darwin.service import STATE_DIR as STATE_DIR
from wgdesk.platforms.darwin.socketowner import OwnerRecord
from wgdesk.platforms.darwin.utun import RUN_DIR, DarwinTunDriver
from wgdesk.platforms.interface import (
    Autostart,
    ControlEndpoint,
    Diagnostics,
    DiagnosticSource,
    EngineIO,
    Identity,
    NetworkView,
    Notes,
    PlatformOptions,
    SilentNotes,
    SplitTunnel,
    TunDriver,
    UapiEndpoints,
)
from wgdesk.undo import UndoRecord

CONTROL_SOCKET = "/var/run/wgdesk/helper.sock"


class DarwinDiagnostics:
    """What the diagnostics bundle collects of a Mac's network."""

    def sources(self) -> tuple[DiagnosticSource, ...]:
        return (
            DiagnosticSource("network/ifconfig.txt", "`ifconfig -a`: interfaces", ("ifconfig", "-a")),
            DiagnosticSource("network/netstat-rn.txt", "`netstat -rn`: routes", ("netstat", "-rn")),
            DiagnosticSource("network/scutil-dns.txt", "`scutil --dns`: resolvers", ("scutil", "--dns")),
            DiagnosticSource("network/pf-anchors.txt", "`pfctl -s Anchors`", ("pfctl", "-s", "Anchors")),
            DiagnosticSource("network/resolv.conf", "/etc/resolv.conf", path="/etc/resolv.conf"),
        )


class DarwinPlatform:
    """macOS. ``runner`` runs the system's tools (tests pass a fake Mac); ``run_dir`` is where the
    ``NAME.name`` records go (``/var/run/wireguard``); ``follows_network``: start ``route -n
    monitor`` once a full tunnel or tunnel DNS is set (the helper's backend); ``boot_rules``: see
    `pf.PfFirewall`."""

    name = "darwin"

    def __init__(
        self,
        options: PlatformOptions | None = None,
        notes: Notes | None = None,
        runner: Runner | None = None,
        run_dir: Path = RUN_DIR,
        follows_network: bool = True,
        boot_rules: Path | None = BOOT_RULES,
    ) -> None:
        self.options = options or PlatformOptions(state_dir=PATHS.state, persistent_dir=PATHS.persistent)
        self.notes = notes or SilentNotes()
        self.runner: Runner = runner or system_runner
        self.run_dir = run_dir
        self.follows_network = follows_network
        """Whether `follow_network` starts reading the routing socket (tests drive `network_watch`
        themselves)."""
        self.boot_rules = boot_rules
        """Where the kill switch is left for the boot-time block: the path ``boot-block`` reads, not
        under the administrator's ``persistent_dir`` (tests: a temporary file)."""

    split: SplitTunnel = missing.MissingSplitTunnel("darwin")
    tun: TunDriver = DarwinTunDriver()
    engine_io: EngineIO = DarwinEngineIO()
    network: NetworkView = DarwinNetworkView()
    autostart: Autostart = LaunchAgent()
    diagnostics: Diagnostics = DarwinDiagnostics()
    service = DarwinService()

    @cached_property
    def tunnels(self) -> DarwinTunnelDevices:
        return DarwinTunnelDevices(self.runner, self.run_dir)

    @cached_property
    def routing(self) -> DarwinRouting:
        return DarwinRouting(self.runner, self.follow_network)

    @cached_property
    def firewall(self) -> PfFirewall:
        return PfFirewall(
            self.runner,
            self.options.state_dir,
            OwnerRecord(self.options.state_dir).owner,
            self.boot_rules,
            lambda ifname: self.tunnels.exists(ifname),
        )

    @cached_property
    def dns(self) -> ScutilDns:
        return ScutilDns(self.runner, self.follow_network)

    @cached_property
    def network_watch(self) -> NetworkWatch:
        """Moves endpoint routes and re-asserts DNS after network changes, read from a routing socket
        of the helper's own (`netwatch`)."""
        return NetworkWatch([self.routing.endpoint_routes.reapply, self.dns.reassert])

    def follow_network(self) -> None:
        """Start following network changes (once): a full tunnel or tunnel DNS is in place."""
        if self.follows_network:
            self.network_watch.start()

    @cached_property
    def identity(self) -> Identity:
        return DarwinIdentity(self.runner)

    @cached_property
    def engine(self) -> DarwinEngineHost:
        return DarwinEngineHost(self.options.state_dir, notes=self.notes)

    @cached_property
    def control(self) -> ControlEndpoint:
        from wgdesk.platforms.darwin.peercred import peer_credentials
        from wgdesk.platforms.unix.control import UnixControlEndpoint

        return UnixControlEndpoint(CONTROL_SOCKET, peer_credentials)

    @cached_property
    def uapi(self) -> UapiEndpoints:
        from wgdesk.platforms.unix.uapi import UnixUapiEndpoints

        return UnixUapiEndpoints()

    def dns_restored(self, key: str) -> None:
        self.dns.forget(key)

    def endpoint_routes_removed(self, endpoints: tuple[str, ...]) -> None:
        self.routing.endpoint_routes.forget(endpoints)

    def load_record(self, fields: Mapping[str, Any]) -> UndoRecord | None:
        for module in RECORD_MODULES:
            import_module(module)
        return REGISTRY.load(fields)

    def undo(self, record: UndoRecord) -> None:
        REGISTRY.undo(record, self)
