"""The OS backend interface: what the helper, the engine and the app ask of an operating system.

One `Platform` per OS (`wgdesk.platforms.linux`, `…darwin`, `…windows`), chosen in one place
(`wgdesk.platforms.create`). Its operations are at the level the helper thinks in — create the
tunnel device, give it addresses and an MTU, add routes in batches, turn the full tunnel on, set DNS,
put the kill switch in place — not at the level of one OS's tools (`ip rule`, nft, a sysctl): those
are the backend's business. Each group of operations is a Protocol of its own (like wireguard-go's
``tun.Device`` and ``conn.Bind``), one file per group in each backend.

Changes that must be undone after a crash are journalled. The helper journals what it asks for
(`wgdesk.undo` records such as "routes added"), and an operation that makes several OS-specific
changes takes a `Recorder`: the backend calls it with a record of its own *before* each change, and
`Platform.undo` reverses such a record later (after a crash, by a newer helper). A backend's records
are its own business; the helper stores and replays them.

Contracts every backend keeps: failures raise `PlatformError` (`Unsupported` where an OS has no
implementation yet) with a message a user can act on; undoing what is already gone is not an error;
nothing here logs keys.
"""

from __future__ import annotations

import re
import socket
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Network, IPv6Network
from pathlib import Path
from typing import Any, Protocol

from wgdesk.platforms.errors import PlatformError
from wgdesk.platforms.network_identity import NetworkIdentity
from wgdesk.undo import UndoRecord

Network = IPv4Network | IPv6Network
Recorder = Callable[[UndoRecord], None]
"""Journals one record durably; called by a backend before the change the record undoes."""


# --- values exchanged ------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlatformOptions:
    """What the helper's administrator settings tell a backend (defaults: the app's and the engine's
    backend, which make none of these changes)."""

    state_dir: Path = Path("/run/wgdesk")
    """Runtime state (lost at reboot): where a backend may mount or create what it needs."""
    persistent_dir: Path = Path("/var/lib/wgdesk")
    """What must be undone even after a power loss (a rewritten resolv.conf's original)."""
    dns_backend: str = "auto"
    """How DNS is set: ``auto`` or one of the backend's own (Linux: resolved, resolvconf, file)."""
    resolv_conf: str = "/etc/resolv.conf"
    split_exclude_cgroup: str = "wgdesk-bypass"
    split_include_cgroup: str = "wgdesk-include"
    cgroup_root: str = ""
    """Where cgroup2 is mounted (empty: found, or mounted under `state_dir`)."""
    allow_split_tunnel: bool = True


@dataclass(frozen=True)
class HelperPaths:
    """Where the helper keeps its files by default on one OS (`Service.paths`): only root (Windows:
    SYSTEM and Administrators) may change any of them, since the helper trusts what it reads there
    (settings, undo journals it replays, the lockdown choice). The settings may move the last two."""

    settings: Path
    """The administrator's settings file (``helper.toml``)."""
    state: Path
    """Runtime state: undo journals, the lock (Linux: a tmpfs, lost at reboot)."""
    persistent: Path
    """What must outlive a reboot or a power loss (`PlatformOptions.persistent_dir`)."""

    @property
    def lockdown_file(self) -> Path:
        """The lockdown choice (`wgdesk.helper.lockdown`)."""
        return self.persistent / "lockdown.json"


class Notes(Protocol):
    """Where a backend reports what it did on its own (mounted a file system, restored a file): the
    helper's log. ``uid`` makes a record that user's (see `wgdesk.helper.logbook`)."""

    def info(self, message: str, uid: int | None = None) -> None: ...

    def warning(self, message: str) -> None: ...

    def error(self, message: str) -> None: ...


class SilentNotes:
    """`Notes` that go nowhere (the app's and the engine's backend)."""

    def info(self, message: str, uid: int | None = None) -> None:
        return None

    def warning(self, message: str) -> None:
        return None

    def error(self, message: str) -> None:
        return None


@dataclass(frozen=True)
class TunnelDevice:
    """A tunnel device the helper created: the handle the engine gets (a file descriptor on Linux and
    macOS; the caller closes it once the engine has it) and the name the kernel gave the interface
    (what was asked for on Linux; ``utunN`` on macOS)."""

    handle: int
    name: str


@dataclass(frozen=True)
class PeerIdentity:
    """Who is at the other end of a control connection, as the kernel says (never the client).

    ``uid`` 0 is the administrator (root; a Windows backend reports LocalSystem and elevated
    administrators as 0); ``groups`` are the supplementary groups at connect time."""

    pid: int
    uid: int
    gid: int
    groups: tuple[int, ...] = ()

    def member_of(self, gid: int | None) -> bool:
        return gid is not None and (self.gid == gid or gid in self.groups)


@dataclass(frozen=True)
class KillSwitchMember:
    """What one tunnel contributes to the kill switch: its interface may carry traffic, and its
    engine's UDP (marked ``fwmark``, from ``listen_port``) may leave by the physical link."""

    tunnel: str
    ifname: str
    fwmark: int
    listen_port: int


@dataclass(frozen=True)
class KillSwitch:
    """The whole kill switch, replaced at once. ``lan``: private ranges let through (the admin's
    ``allow_lan``); ``marks``: packets of split-tunnelled apps (their tunnel's marks) let out."""

    members: tuple[KillSwitchMember, ...] = ()
    lan: tuple[str, ...] = ()
    marks: tuple[int, ...] = ()


@dataclass(frozen=True)
class FullTunnel:
    """All traffic of ``families`` (IP versions: 4, 6) through ``ifname`` except the engine's own
    (marked ``fwmark``; its routes are in table ``fwmark``). ``addresses`` are the tunnel's; a family
    not carried is blocked from leaving elsewhere (no native-IPv6 leak); ``lan`` as in `KillSwitch`.
    ``endpoints``: the peers' endpoint addresses, for a backend without policy routing (macOS routes
    each outside the tunnel through the original gateway; Linux does not need them)."""

    ifname: str
    fwmark: int
    addresses: tuple[str, ...]
    families: frozenset[int]
    lan: tuple[str, ...] = ()
    endpoints: tuple[str, ...] = ()


@dataclass(frozen=True)
class Bypass:
    """Excluded apps go around full tunnel ``ifname``: their packets take the engine's ``fwmark``
    (so the physical link), except to the tunnel's DNS servers."""

    ifname: str
    fwmark: int
    addresses: tuple[str, ...]
    dns_servers: tuple[str, ...]


@dataclass(frozen=True)
class Include:
    """Included apps go only through ``ifname`` (up with full tunnel off; its peers allow the default
    route of ``families``): their packets get ``mark``, whose routing table holds the tunnel's default
    routes. ``owner``: only that user's apps (None: everyone's, for root's tunnel)."""

    ifname: str
    mark: int
    families: frozenset[int]
    owner: int | None


@dataclass(frozen=True)
class MachineSetting:
    """A machine-wide setting a feature needs (Linux: a sysctl), restored when the last tunnel that
    needs it goes."""

    key: str
    value: str


GROUP_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
"""What a split-tunnel group's name may be (on Linux it ends up in an nft script and a path)."""


@dataclass(frozen=True)
class SplitProcess:
    """One process in the bypass (``mode`` "exclude") or the include group (``mode`` "include")."""

    pid: int
    uid: int
    command: str
    mode: str = "exclude"

    def as_dict(self) -> dict[str, Any]:
        return {"pid": self.pid, "uid": self.uid, "command": self.command, "mode": self.mode}


@dataclass(frozen=True)
class EngineLaunch:
    """How the helper starts one engine: ``executable -f ifname`` with the tunnel device, the UAPI
    listener and (for wgdesk-engine) the bound UDP sockets handed over, as ``account`` (``root``:
    keeps its privileges, for an engine that binds its own socket). ``tun`` and ``uapi`` are None
    where the engine makes both itself (`TunnelDevices.made_by_engine`)."""

    executable: str
    ifname: str
    account: str
    tun: int | None
    uapi: int | None
    udp: tuple[int | None, ...] | None = None
    environment: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class DiagnosticSource:
    """One part of the diagnostics bundle: the output of ``argv`` (a program name, looked up on
    ``PATH``) or the text of the file ``path``, stored as ``member``."""

    member: str
    description: str
    argv: tuple[str, ...] = ()
    path: str = ""


class SplitError(PlatformError):
    """Split tunnelling refused or failed; ``code`` is the control protocol's error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# --- connections -----------------------------------------------------------------------------------


class Connection(Protocol):
    """A connected stream: a control-socket client, or the helper's UAPI connection to an engine
    (``socket.socket`` is one; a Windows named-pipe wrapper would be another)."""

    def recv(self, size: int, /) -> bytes: ...

    def sendall(self, data: bytes, /) -> None: ...

    def settimeout(self, seconds: float | None, /) -> None: ...

    def close(self) -> None: ...


class Listener(Protocol):
    """A bound control endpoint."""

    def accept(self) -> Connection:
        """The next client; raises `TimeoutError` after half a second without one (so a server loop
        can look at its stop flag), `OSError` once closed."""
        ...

    def close(self) -> None: ...


class EndpointInUse(PlatformError):
    """Another process answers on the endpoint (another helper, another engine)."""


class ControlEndpoint(Protocol):
    """Where the helper listens for clients (a UNIX socket; a named pipe on Windows)."""

    def default_address(self) -> str: ...

    def bind(self, address: str, group: int | None, open_to_all: bool) -> Listener:
        """Listen on ``address``: only root and members of ``group`` may connect (root only
        without one); ``open_to_all`` lets every local user connect (a monitor group: the peer's
        identity then decides). Raises `EndpointInUse`, `PermissionError` for an unsafe place."""
        ...

    def peer(self, connection: Connection) -> PeerIdentity:
        """Who connected, from the kernel (``SO_PEERCRED``, ``LOCAL_PEERCRED``, the pipe client's
        token)."""
        ...

    def connect(self, address: str, timeout: float) -> Connection:
        """A client's connection to the helper at ``address`` (``timeout`` for every read and
        write). Raises `FileNotFoundError` or `ConnectionRefusedError` when nothing listens there,
        `PermissionError` when this user may not connect, another `OSError` otherwise."""
        ...

    def server_uid(self, connection: Connection) -> int | None:
        """Who serves the other end of a client's ``connection``, from the kernel: 0 is the
        administrator (root; LocalSystem on Windows), None when the OS cannot tell. A client sends
        secrets only to 0."""
        ...


class UapiEndpoints(Protocol):
    """The engines' UAPI endpoints (``/var/run/wireguard/IFNAME.sock``; a named pipe on Windows)."""

    def path(self, ifname: str) -> str: ...

    def listen(self, ifname: str) -> socket.socket:
        """Create the listener an engine is handed (root-only); replaces a stale one, raises
        `EndpointInUse` when an engine answers there."""
        ...

    def connect(self, ifname: str, timeout: float) -> Connection: ...

    def ready(self, ifname: str) -> bool:
        """Whether an engine's endpoint is there now, without talking to it (the helper polls this
        for an engine that makes its own, `TunnelDevices.made_by_engine`)."""
        ...

    def remove(self, path: str) -> None:
        """Remove a listener left behind (nothing when it is gone)."""
        ...


# --- the tunnel device, addresses, routes ------------------------------------------------------------


class TunnelDevices(Protocol):
    """The tunnel interface as the helper handles it."""

    made_by_engine: bool
    """True where the engine must make the device itself, with its UAPI endpoint and UDP sockets
    (Windows: a Wintun session and a named pipe cannot be handed to another process the way a UNIX
    passes descriptors, and its sockets are pinned to the physical interface instead of marked). The
    helper then starts the engine with none of them, waits for its endpoint (`UapiEndpoints.ready`)
    and its device (`find`), and never calls `create`; stopping the engine removes the device."""

    def create(self, name: str, *, packet_info: bool, offload: bool, record: Recorder) -> TunnelDevice:
        """Create the interface (``packet_info``: with the 4-byte header wireguard-go of 2022
        expects; ``offload``: with the virtio header wgdesk-engine's offload path uses)."""
        ...

    def find(self, name: str) -> str:
        """The name the kernel gave the device an engine made for tunnel ``name`` (the helper uses it
        for every later change); `FileNotFoundError` while there is none."""
        ...

    def exists(self, name: str) -> bool: ...

    def delete(self, name: str) -> None: ...

    def add_addresses(self, name: str, addresses: Sequence[str]) -> None:
        """Add ``addresses`` (``IP/PREFIX``) in one step; IPv6 without duplicate detection."""
        ...

    def delete_addresses(self, name: str, addresses: Sequence[str]) -> None: ...

    def configure(self, name: str, *, mtu: int | None = None, up: bool | None = None) -> None: ...

    def mtu(self, name: str) -> int:
        """The interface's MTU now (`OSError` when it is gone)."""
        ...


class Routing(Protocol):
    """Routes, routing tables and the policy that sends everything through a tunnel."""

    def add_routes(self, ifname: str, destinations: Sequence[Network], table: str) -> None:
        """Add routes to ``destinations`` through ``ifname`` in ``table`` (``main``, a number or a
        name) in one batch; raises naming the first one refused (the others stay)."""
        ...

    def delete_routes(self, ifname: str, destinations: Sequence[Network], table: str) -> None:
        """Delete those routes (ones already gone are fine)."""
        ...

    def table_in_use(self, table: int) -> bool: ...

    def mark_in_use(self, mark: int) -> bool:
        """Whether any policy rule mentions ``mark`` as a mark or a table."""
        ...

    def route_mtu(self, destination: str) -> int | None:
        """The MTU of the way to ``destination`` now (None: no route)."""
        ...

    def default_route_mtu(self) -> int | None: ...

    def full_tunnel_on(self, tunnel: FullTunnel, record: Recorder) -> None:
        """Send all traffic of ``tunnel.families`` through the tunnel except the engine's own."""
        ...

    def mark_routing_on(self, mark: int, families: frozenset[int], record: Recorder) -> None:
        """Packets marked ``mark`` use routing table ``mark`` (included apps)."""
        ...

    def mark_settings(self, families: frozenset[int]) -> tuple[MachineSetting, ...]:
        """Machine-wide settings marked traffic of ``families`` needs (Linux: IPv4 reverse-path
        checks that use the mark)."""
        ...

    def read_setting(self, key: str) -> str: ...

    def write_setting(self, key: str, value: str) -> None: ...


class Firewall(Protocol):
    """The kill switch, the full tunnel's packet filter and the failsafe block."""

    def full_tunnel_on(self, tunnel: FullTunnel, record: Recorder) -> None:
        """What a full tunnel needs of the packet filter before the engine's first initiation
        (Linux: conntrack marks of the engine's UDP, an injection guard, the IPv6 block)."""
        ...

    def apply_kill_switch(self, kill_switch: KillSwitch) -> None:
        """Replace the kill switch with ``kill_switch`` in one transaction."""
        ...

    def remove_kill_switch(self) -> None: ...

    def kill_switch_present(self) -> bool: ...

    def block_all(self) -> None:
        """Block every routed packet by other means than the kill switch's (fail closed when the
        packet filter cannot be used); survives a helper restart."""
        ...

    def unblock_all(self) -> None: ...

    def blocking_all(self) -> bool: ...


class Dns(Protocol):
    """DNS servers and search domains of a tunnel."""

    @property
    def backend(self) -> str:
        """What sets them (Linux: ``resolved``, ``resolvconf`` or ``file``)."""
        ...

    @property
    def exclusive(self) -> bool:
        """Only one tunnel at a time can set DNS (a rewritten resolv.conf)."""
        ...

    def set(self, ifname: str, servers: Sequence[str], search: Sequence[str], record: Recorder) -> None: ...

    def restore_left(self) -> None:
        """At helper start: put back what a tunnel changed before a power loss (the journals, on a
        tmpfs, are gone then)."""
        ...


class SplitTunnel(Protocol):
    """Per-application split tunnelling: a group of processes that bypass full tunnels (``mode``
    "exclude") and one whose processes go only through a tunnel ("include")."""

    def group(self, mode: str) -> str:
        """The group's name (Linux: the cgroup's)."""
        ...

    def refusal(self, mode: str) -> tuple[str, str] | None:
        """Why processes cannot join that group here, as (error code, message); None when they can."""
        ...

    def locate(self, mode: str) -> None:
        """Find (or mount) what the group lives in, so `members` sees who is left (`SplitError`)."""
        ...

    def move_peer(self, connection: Connection, uid: int, mode: str) -> SplitProcess:
        """Move the process at the other end of ``connection`` (the kernel's answer, never a pid a
        client names) into the group, if it is ``uid``'s own and unprivileged (`SplitError`)."""
        ...

    def members(self, mode: str, uid: int | None = None) -> list[SplitProcess]: ...

    def bypass_on(self, bypass: Bypass, record: Recorder) -> None: ...

    def include_on(self, include: Include, record: Recorder) -> None: ...

    def guard_on(self) -> None:
        """Included apps get out only through a tunnel that marks them (others: loopback only)."""
        ...

    def guard_off(self) -> None: ...

    def guard_present(self) -> bool: ...

    def close(self) -> None:
        """Remove the groups when empty and what was mounted (helper shutdown)."""
        ...


# --- processes ------------------------------------------------------------------------------------


class Identity(Protocol):
    """Accounts and processes."""

    def group_id(self, name: str) -> int | None: ...

    def account_ids(self, user: str) -> tuple[int, int]:
        """(uid, primary gid) of ``user``; `KeyError` when there is none."""
        ...

    def start_time(self, pid: int) -> int | None:
        """When process ``pid`` started (in the OS's units), to tell it from a reused pid."""
        ...

    def terminate(self, pid: int, start_time: int | None) -> None:
        """Stop process ``pid`` only if it is still the one that started at ``start_time``."""
        ...


class EngineHost(Protocol):
    """What the helper and the engine need to run an engine without privileges."""

    def bind_udp(self, port: int, fwmark: int) -> tuple[socket.socket | None, socket.socket | None, int]:
        """An IPv4 and an IPv6-only UDP socket on one port (0: any), ``fwmark`` set; either is None
        when its family is unavailable. Returns (v4, v6, port)."""
        ...

    def start(self, launch: EngineLaunch) -> subprocess.Popen[bytes]:
        """Start the engine; it drops to ``launch.account`` itself before reading any input."""
        ...

    def drop_privileges(self, uid: int, gid: int) -> None:
        """The engine's own call: become ``uid``:``gid`` for good, with no capability left."""
        ...


class Tun(Protocol):
    """A tunnel device as the engine reads and writes it (wireguard-go's ``tun.Device``)."""

    fd: int
    name: str
    vnet_hdr: bool
    """Packets carry a ``virtio_net_hdr`` (Linux offload)."""
    af_header: bool
    """Packets carry a 4-byte address family (macOS utun)."""
    offloads: int
    writes: int
    """System calls made by `write_batch` so far."""
    gone_errnos: frozenset[int]
    """What reads and writes fail with once the interface was deleted."""

    def read_batch(self, limit: int) -> list[bytes]: ...

    def write_batch(self, packets: list[bytes]) -> int: ...

    def enable_offloads(self) -> int: ...

    def set_mtu(self, mtu: int) -> None: ...

    def mtu(self) -> int: ...

    def index(self) -> int: ...

    def fileno(self) -> int: ...

    def close(self) -> None: ...


class TunDriver(Protocol):
    """How the engine gets its tunnel device: creates one, or adopts one handed over (``WG_TUN_FD``).
    Raises `wgdesk.platforms.errors.PlatformError` subclass `TunError` with the reason."""

    def create(self, name: str, mtu: int, vnet_hdr: bool) -> Tun: ...

    def adopt(self, fd: int) -> Tun: ...


class UapiListener(Protocol):
    """Where an engine's UAPI server takes clients from: a listening socket (Linux, macOS) or a
    look-alike that accepts on a named pipe and hands over a socket (Windows)."""

    def fileno(self) -> int: ...

    def setblocking(self, flag: bool, /) -> None: ...

    def accept(self) -> tuple[socket.socket, Any]: ...

    def close(self) -> None: ...


class BoundSockets(Protocol):
    """An engine's UDP sockets (either may be None): what a `UdpGuard` looks after."""

    sock4: socket.socket | None
    sock6: socket.socket | None


class UdpGuard(Protocol):
    """Keeps an engine's UDP out of its own tunnel where the OS has no mark to route it by (Windows
    pins the sockets to the physical interface); told of every new pair of sockets."""

    def bound(self, sockets: BoundSockets) -> None: ...

    def close(self) -> None: ...


class EngineIO(Protocol):
    """What the engine itself asks of the OS besides its device (`TunDriver`), when it runs on its
    own or is handed nothing for it."""

    @property
    def compiled_reads_device(self) -> bool:
        """The compiled data path may read and write `Tun.fd` itself (False where ``fd`` only wakes
        the loop, as on Windows: the engine then runs the pure-Python path)."""
        ...

    def listen_uapi(self, ifname: str) -> tuple[UapiListener, Path | None]:
        """The engine's UAPI listener and the file it lives at (None: nothing on disk). Raises
        `EndpointInUse` when an engine answers there."""
        ...

    def guard_udp(self, tun: Tun) -> UdpGuard:
        """What keeps the UDP of the engine on ``tun`` out of ``tun``; `UdpGuard.close` when done."""
        ...


class TunError(PlatformError):
    """The tunnel device could not be created or adopted (missing privileges, a bad name, not a TUN)."""


class TunGone(Exception):
    """The interface behind the engine's tunnel device was deleted."""


# --- the helper as a service, the user's session ------------------------------------------------------


StopHook = Callable[[Callable[[], None]], None]
"""Takes the helper's stop function, to call when the service manager asks the helper to stop."""

HelperRun = Callable[[list[str], StopHook | None], int]
"""The helper's body: ``run(argv, stop_hook)`` (``stop_hook`` None: signals stop it); its exit status."""


class Service(Protocol):
    """The helper as the OS runs it (systemd service, LaunchDaemon, Windows service)."""

    def host(self, run: HelperRun, argv: list[str]) -> int:
        """Run the helper as this OS's service manager starts it: in the foreground, stopped by
        signals (systemd, launchd, a developer's shell), or under the Windows service control
        dispatcher (whose stop request calls the helper's stop). Also what an uninstaller calls
        (Windows: ``wgdesk-helper --uninstall``). Returns the exit status."""
        ...

    def privileged(self) -> bool: ...

    @property
    def paths(self) -> HelperPaths:
        """This OS's default places for the helper's files."""
        ...

    def prepare_directory(self, path: Path) -> None:
        """Make sure the directory ``path`` (and what this OS's layout puts above it) exists and that
        nobody but the helper's own account and the administrators can change it; raises
        `PlatformError` saying what is wrong and how to mend it when it cannot (the helper then
        refuses to start). Called before anything in it is read."""
        ...

    def private_file(self, fd: int) -> str | None:
        """Why the open file ``fd`` may have been written by someone other than the helper (a reason
        to distrust what it holds), or None when only the helper's account and the administrators
        can have written it."""
        ...

    def lock(self, state_dir: Path) -> object | None:
        """Hold the state directory for this helper (None: another holds it). Keep the result."""
        ...

    def notify_ready(self, status: str | None) -> None:
        """Tell the service manager the helper serves (``status``: a problem to show)."""
        ...

    def run_hook(self, command: str, ifname: str, timeout: float) -> int:
        """Run a config's PreUp/PostUp/PreDown/PostDown ``command`` (``%i``: the interface) with a
        clean environment; its exit status."""
        ...


class NetworkView(Protocol):
    """What this machine's network is, for the app (no privileges needed)."""

    def current_network(self) -> NetworkIdentity | None: ...

    def local_networks(self) -> list[Network]: ...

    def route_to(self, address: str) -> dict[str, str] | None: ...

    def ping(self, ifname: str, target: str, packet_size: int) -> bool:
        """One echo of ``packet_size`` bytes (IP header included) with don't-fragment set, through
        ``ifname``; True when it (or a retry) comes back."""
        ...


class Autostart(Protocol):
    """The app starting at the user's login."""

    def location(self) -> Path:
        """Where the entry lives (Windows: a pseudo-path naming the registry value)."""
        ...

    def enabled(self) -> bool: ...

    def set(self, enabled: bool, command: str) -> None:
        """Create (``command`` starts the app minimised) or remove the entry."""
        ...


class Diagnostics(Protocol):
    """What the diagnostics bundle collects of this OS's network view."""

    def sources(self) -> tuple[DiagnosticSource, ...]: ...


class Platform(Protocol):
    """One operating system."""

    @property
    def name(self) -> str:
        """``linux``, ``darwin`` or ``win32`` (the names `wgdesk.config.lint` takes)."""
        ...

    @property
    def tunnels(self) -> TunnelDevices: ...

    @property
    def routing(self) -> Routing: ...

    @property
    def firewall(self) -> Firewall: ...

    @property
    def dns(self) -> Dns: ...

    @property
    def split(self) -> SplitTunnel: ...

    @property
    def identity(self) -> Identity: ...

    @property
    def engine(self) -> EngineHost: ...

    @property
    def tun(self) -> TunDriver: ...

    @property
    def engine_io(self) -> EngineIO: ...

    @property
    def control(self) -> ControlEndpoint: ...

    @property
    def uapi(self) -> UapiEndpoints: ...

    @property
    def service(self) -> Service: ...

    @property
    def network(self) -> NetworkView: ...

    @property
    def autostart(self) -> Autostart: ...

    @property
    def diagnostics(self) -> Diagnostics: ...

    def load_record(self, fields: Mapping[str, Any]) -> UndoRecord | None:
        """A journal line this backend wrote (through a `Recorder`) as its record; None when the
        kind is not one of its own."""
        ...

    def undo(self, record: UndoRecord) -> None:
        """Reverse one of this backend's records (harmless when the change never happened)."""
        ...
