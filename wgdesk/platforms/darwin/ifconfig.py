"""The tunnel interface on macOS (a `wgdesk.platforms.interface.TunnelDevices`): a utun created by
the helper, its addresses, MTU and state through ``ifconfig`` as wg-quick's darwin script does:

* IPv4 ``ifconfig utunN inet ADDR/LEN ADDR alias`` (a point-to-point link: the destination is the
  address itself), IPv6 ``ifconfig utunN inet6 ADDR/LEN alias`` (utun does no duplicate detection);
* ``ifconfig utunN mtu M``, ``ifconfig utunN up``.

The helper asks for a tunnel by its config's name; macOS names the interface ``utunN`` itself, and
that name is recorded in ``/var/run/wireguard/NAME.name`` (as wg-quick does), so ``wg show NAME``
finds the engine's socket ``/var/run/wireguard/utunN.sock``. The record is journalled and removed on
the way down. The utun disappears with its last descriptor (the engine's), so `delete` only
removes the record.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from ipaddress import ip_interface
from pathlib import Path

from wgdesk.platforms.darwin.records import REGISTRY, UndoContext
from wgdesk.platforms.darwin.runner import IFCONFIG, Runner
from wgdesk.platforms.darwin.utun import name_record, open_utun, write_name_record
from wgdesk.platforms.errors import PlatformError
from wgdesk.platforms.interface import Recorder, TunnelDevice
from wgdesk.undo import UndoRecord

_HEAD = re.compile(r"^([A-Za-z0-9]+): flags=[0-9a-f]+<([^>]*)> mtu (\d+)")
_INET = re.compile(r"^\s+inet (\S+)(?: --> \S+)? netmask (0x[0-9a-f]{8})")
_INET6 = re.compile(r"^\s+inet6 ([^\s%]+)(?:%\S+)? prefixlen (\d+)")


@dataclass(frozen=True)
class UtunNameRecorded(UndoRecord):
    """``/var/run/wireguard/TUNNEL.name`` was written (it names the tunnel's utunN)."""

    kind = "darwin_utun_name"
    tunnel: str


@REGISTRY.undoes(UtunNameRecorded)
def _remove_name_record(record: UtunNameRecorded, context: UndoContext) -> None:
    name_record(record.tunnel, context.run_dir).unlink(missing_ok=True)


def address_add(ifname: str, address: str) -> list[str]:
    """The ``ifconfig`` that adds ``address`` (``IP/PREFIX``) to ``ifname``, as wg-quick does."""
    interface = ip_interface(address)
    if interface.version == 4:
        return [IFCONFIG, ifname, "inet", str(interface), str(interface.ip), "alias"]
    return [IFCONFIG, ifname, "inet6", str(interface), "alias"]


def address_delete(ifname: str, address: str) -> list[str]:
    interface = ip_interface(address)
    return [IFCONFIG, ifname, "inet" if interface.version == 4 else "inet6", str(interface.ip), "-alias"]


def configure_commands(ifname: str, mtu: int | None, up: bool | None) -> list[list[str]]:
    commands = []
    if mtu is not None:
        if not 576 <= mtu <= 65535:
            raise PlatformError(f"MTU {mtu} is out of range (576 to 65535)")
        commands.append([IFCONFIG, ifname, "mtu", str(mtu)])
    if up is not None:
        commands.append([IFCONFIG, ifname, "up" if up else "down"])
    return commands


@dataclass(frozen=True)
class InterfaceState:
    """What ``ifconfig`` says of one interface: its flags, MTU and addresses (``ADDRESS/PREFIX``;
    IPv6 link-local ones included, with their scope removed)."""

    flags: tuple[str, ...]
    mtu: int
    addresses: tuple[str, ...]


def parse_ifconfig_all(text: str) -> dict[str, InterfaceState]:
    """``ifconfig`` or ``ifconfig NAME``: each interface by name."""
    found: dict[str, InterfaceState] = {}
    name = ""
    flags: tuple[str, ...] = ()
    mtu = 0
    addresses: list[str] = []

    def close() -> None:
        if name:
            found[name] = InterfaceState(flags, mtu, tuple(addresses))

    for line in text.splitlines():
        head = _HEAD.match(line)
        if head:
            close()
            name, flags, mtu, addresses = (
                head.group(1),
                tuple(head.group(2).split(",")),
                int(head.group(3)),
                [],
            )
            continue
        v4, v6 = _INET.match(line), _INET6.match(line)
        if v4:
            addresses.append(f"{v4.group(1)}/{bin(int(v4.group(2), 16)).count('1')}")
        elif v6:
            addresses.append(f"{v6.group(1)}/{v6.group(2)}")
    close()
    return found


def parse_ifconfig(text: str) -> InterfaceState:
    """``ifconfig utunN``: its state, link-local addresses left out (`ValueError` without an
    interface line)."""
    interfaces = list(parse_ifconfig_all(text).values())
    if not interfaces:
        raise ValueError("no 'NAME: flags=… mtu N' line in the ifconfig output")
    state = interfaces[0]
    kept = tuple(a for a in state.addresses if not a.lower().startswith("fe80:"))
    return InterfaceState(state.flags, state.mtu, kept)


_VALID_IFNAME = re.compile(r"[A-Za-z0-9]{1,15}")


def _checked(ifname: str) -> str:
    if not _VALID_IFNAME.fullmatch(ifname):
        raise PlatformError(f"invalid interface name {ifname!r}")
    return ifname


class DarwinTunnelDevices:
    """utun interfaces through the kernel-control socket and ``ifconfig``."""

    made_by_engine = False  # the helper opens the utun and hands it over

    def __init__(
        self, runner: Runner, run_dir: Path, opener: Callable[[int], tuple[int, str]] = open_utun
    ) -> None:
        self.runner = runner
        self.run_dir = run_dir
        self.opener = opener

    def create(self, name: str, *, packet_info: bool, offload: bool, record: Recorder) -> TunnelDevice:
        """A new utun (the kernel picks N) for tunnel ``name``; ``packet_info`` and ``offload`` do not
        apply (a utun always has the 4-byte header and no offloads)."""
        record(UtunNameRecorded(name))
        fd, ifname = self.opener(0)
        write_name_record(name, ifname, self.run_dir)
        return TunnelDevice(fd, ifname)

    def find(self, name: str) -> str:
        """The ``utunN`` recorded for tunnel ``name`` (`FileNotFoundError` without one)."""
        ifname = name_record(name, self.run_dir).read_text().strip()
        if not self.exists(ifname):
            raise FileNotFoundError(f"no interface {ifname} for {name}")
        return ifname

    def exists(self, name: str) -> bool:
        try:
            socket.if_nametoindex(name)
        except OSError:
            return False
        return True

    def delete(self, name: str) -> None:
        """Remove the name records that point at ``name`` (the utun itself goes with the engine)."""
        for path in self.run_dir.glob("*.name"):
            try:
                if path.read_text().strip() == name:
                    path.unlink(missing_ok=True)
            except OSError:
                continue

    def add_addresses(self, name: str, addresses: Sequence[str]) -> None:
        for address in addresses:
            self.runner(address_add(_checked(name), address))

    def delete_addresses(self, name: str, addresses: Sequence[str]) -> None:
        for address in addresses:
            self.runner(address_delete(_checked(name), address), check=False)

    def configure(self, name: str, *, mtu: int | None = None, up: bool | None = None) -> None:
        for argv in configure_commands(_checked(name), mtu, up):
            self.runner(argv)

    def mtu(self, name: str) -> int:
        proc = self.runner([IFCONFIG, _checked(name)], check=False)
        if proc.returncode != 0:
            raise OSError(f"interface {name} does not exist")
        return parse_ifconfig(proc.stdout).mtu
