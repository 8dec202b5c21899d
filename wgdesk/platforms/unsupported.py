"""The parts of the backend interface an OS has no implementation of yet: each operation raises
`Unsupported` naming what, on which OS, and the issue that brings it (macOS 15, Windows 16).

Each class here is checked by mypy against its Protocol (`wgdesk.platforms.interface`) where a
backend returns it, so a backend that implements a part replaces one class and the helper does not
change.
"""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn

from wgdesk.platforms.errors import Unsupported
from wgdesk.platforms.interface import (
    Bypass,
    Connection,
    EngineLaunch,
    FullTunnel,
    HelperRun,
    Include,
    KillSwitch,
    Listener,
    MachineSetting,
    Network,
    PeerIdentity,
    Recorder,
    SplitProcess,
    Tun,
    TunnelDevice,
)
from wgdesk.undo import UndoRecord

_LABELS = {"darwin": ("macOS", 15), "win32": ("Windows", 16)}


class Missing:
    """Base of the stand-ins: knows the OS, refuses every operation."""

    def __init__(self, system: str) -> None:
        self.system = system

    def refuse(self, what: str) -> NoReturn:
        label, issue = _LABELS.get(self.system, (self.system, 0))
        raise Unsupported(f"{what} is not implemented on {label} yet (issue {issue})")


class MissingTunnelDevices(Missing):
    made_by_engine = False

    def find(self, name: str) -> str:
        self.refuse("looking up an interface")

    def create(self, name: str, *, packet_info: bool, offload: bool, record: Recorder) -> TunnelDevice:
        self.refuse("creating a tunnel device")

    def exists(self, name: str) -> bool:
        self.refuse("looking up an interface")

    def delete(self, name: str) -> None:
        self.refuse("deleting an interface")

    def add_addresses(self, name: str, addresses: Sequence[str]) -> None:
        self.refuse("adding addresses")

    def delete_addresses(self, name: str, addresses: Sequence[str]) -> None:
        self.refuse("deleting addresses")

    def configure(self, name: str, *, mtu: int | None = None, up: bool | None = None) -> None:
        self.refuse("configuring an interface")

    def mtu(self, name: str) -> int:
        self.refuse("reading an interface's MTU")


class MissingRouting(Missing):
    def add_routes(self, ifname: str, destinations: Sequence[Network], table: str) -> None:
        self.refuse("adding routes")

    def delete_routes(self, ifname: str, destinations: Sequence[Network], table: str) -> None:
        self.refuse("deleting routes")

    def table_in_use(self, table: int) -> bool:
        self.refuse("routing tables")

    def mark_in_use(self, mark: int) -> bool:
        self.refuse("packet marks")

    def route_mtu(self, destination: str) -> int | None:
        self.refuse("the MTU of a route")

    def default_route_mtu(self) -> int | None:
        self.refuse("the MTU of the default route")

    def full_tunnel_on(self, tunnel: FullTunnel, record: Recorder) -> None:
        self.refuse("full tunnel routing")

    def mark_routing_on(self, mark: int, families: frozenset[int], record: Recorder) -> None:
        self.refuse("routing by packet mark")

    def mark_settings(self, families: frozenset[int]) -> tuple[MachineSetting, ...]:
        self.refuse("routing by packet mark")

    def read_setting(self, key: str) -> str:
        self.refuse("machine settings")

    def write_setting(self, key: str, value: str) -> None:
        self.refuse("machine settings")


class MissingFirewall(Missing):
    def full_tunnel_on(self, tunnel: FullTunnel, record: Recorder) -> None:
        self.refuse("the full tunnel's packet filter")

    def apply_kill_switch(self, kill_switch: KillSwitch) -> None:
        self.refuse("the kill switch")

    def remove_kill_switch(self) -> None:
        self.refuse("the kill switch")

    def kill_switch_present(self) -> bool:
        self.refuse("the kill switch")

    def block_all(self) -> None:
        self.refuse("the failsafe block")

    def unblock_all(self) -> None:
        self.refuse("the failsafe block")

    def blocking_all(self) -> bool:
        self.refuse("the failsafe block")


class MissingDns(Missing):
    @property
    def backend(self) -> str:
        return "none"

    @property
    def exclusive(self) -> bool:
        return False

    def set(self, ifname: str, servers: Sequence[str], search: Sequence[str], record: Recorder) -> None:
        self.refuse("setting DNS")

    def restore_left(self) -> None:
        return None


class MissingSplitTunnel(Missing):
    def group(self, mode: str) -> str:
        return ""

    def refusal(self, mode: str) -> tuple[str, str] | None:
        label, issue = _LABELS.get(self.system, (self.system, 0))
        return "unsupported", f"apps cannot be split from tunnels on {label} yet (issue {issue})"

    def locate(self, mode: str) -> None:
        self.refuse("split tunnelling")

    def move_peer(self, connection: Connection, uid: int, mode: str) -> SplitProcess:
        self.refuse("split tunnelling")

    def members(self, mode: str, uid: int | None = None) -> list[SplitProcess]:
        return []

    def bypass_on(self, bypass: Bypass, record: Recorder) -> None:
        self.refuse("split tunnelling")

    def include_on(self, include: Include, record: Recorder) -> None:
        self.refuse("split tunnelling")

    def guard_on(self) -> None:
        self.refuse("split tunnelling")

    def guard_off(self) -> None:
        return None

    def guard_present(self) -> bool:
        return False

    def close(self) -> None:
        return None


class MissingIdentity(Missing):
    def group_id(self, name: str) -> int | None:
        self.refuse("groups")

    def account_ids(self, user: str) -> tuple[int, int]:
        self.refuse("accounts")

    def start_time(self, pid: int) -> int | None:
        self.refuse("process start times")

    def terminate(self, pid: int, start_time: int | None) -> None:
        self.refuse("stopping a recorded process")


class MissingEngineHost(Missing):
    def bind_udp(self, port: int, fwmark: int) -> tuple[socket.socket | None, socket.socket | None, int]:
        self.refuse("binding the engine's UDP sockets")

    def start(self, launch: EngineLaunch) -> subprocess.Popen[bytes]:
        self.refuse("starting an engine")

    def drop_privileges(self, uid: int, gid: int) -> None:
        self.refuse("dropping privileges")


class MissingTunDriver(Missing):
    def create(self, name: str, mtu: int, vnet_hdr: bool) -> Tun:
        self.refuse("the engine's tunnel device")

    def adopt(self, fd: int) -> Tun:
        self.refuse("the engine's tunnel device")


class MissingControlEndpoint(Missing):
    def default_address(self) -> str:
        self.refuse("the control endpoint")

    def bind(self, address: str, group: int | None, open_to_all: bool) -> Listener:
        self.refuse("the control endpoint")

    def peer(self, connection: Connection) -> PeerIdentity:
        self.refuse("the identity of a control connection")


class MissingUapiEndpoints(Missing):
    def path(self, ifname: str) -> str:
        self.refuse("UAPI endpoints")

    def listen(self, ifname: str) -> socket.socket:
        self.refuse("UAPI endpoints")

    def connect(self, ifname: str, timeout: float) -> Connection:
        self.refuse("UAPI endpoints")

    def ready(self, ifname: str) -> bool:
        self.refuse("UAPI endpoints")

    def remove(self, path: str) -> None:
        self.refuse("UAPI endpoints")


class MissingService(Missing):
    def host(self, run: HelperRun, argv: list[str]) -> int:
        return run(argv, None)  # refused at `privileged`, with the reason

    def privileged(self) -> bool:
        self.refuse("running the helper")

    def lock(self, state_dir: Path) -> object | None:
        self.refuse("running the helper")

    def notify_ready(self, status: str | None) -> None:
        return None

    def run_hook(self, command: str, ifname: str, timeout: float) -> int:
        self.refuse("running hooks")


class MissingRecords(Missing):
    """A backend without records of its own (nothing it changes needs a journal yet)."""

    def load_record(self, fields: Mapping[str, Any]) -> UndoRecord | None:
        return None

    def undo(self, record: UndoRecord) -> None:
        self.refuse(f"undoing {record.kind}")
