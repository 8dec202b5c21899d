"""The tunnel interface as the helper handles it: created through `tun.open_tun`, addressed, set up,
deleted (a `wgdesk.platforms.interface.TunnelDevices`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from wgdesk.platforms.interface import Recorder, TunnelDevice
from wgdesk.platforms.linux import iproute
from wgdesk.platforms.linux.records import REGISTRY, UndoContext
from wgdesk.platforms.linux.tun import open_tun
from wgdesk.undo import UndoRecord


@dataclass(frozen=True)
class LinkCreated(UndoRecord):
    """The tunnel's interface (deleted with it: its addresses and routes go too)."""

    kind = "link"
    ifname: str


@REGISTRY.undoes(LinkCreated)
def _(record: LinkCreated, context: UndoContext) -> None:
    iproute.link_delete(record.ifname)


class LinuxTunnelDevices:
    """TUN interfaces, their addresses and MTU."""

    made_by_engine = False  # the helper opens the TUN and hands it over

    def find(self, name: str) -> str:
        """A TUN keeps the name it was created with."""
        if not self.exists(name):
            raise FileNotFoundError(f"no interface {name}")
        return name

    def create(self, name: str, *, packet_info: bool, offload: bool, record: Recorder) -> TunnelDevice:
        record(LinkCreated(name))
        return TunnelDevice(open_tun(name, packet_info=packet_info, vnet_hdr=offload), name)

    def exists(self, name: str) -> bool:
        return iproute.link_exists(name)

    def delete(self, name: str) -> None:
        iproute.link_delete(name)

    def add_addresses(self, name: str, addresses: Sequence[str]) -> None:
        iproute.addrs_add(name, addresses)

    def delete_addresses(self, name: str, addresses: Sequence[str]) -> None:
        iproute.addrs_del(name, addresses)

    def configure(self, name: str, *, mtu: int | None = None, up: bool | None = None) -> None:
        iproute.link_set(name, up=up, mtu=mtu)

    def mtu(self, name: str) -> int:
        return int(Path(f"/sys/class/net/{name}/mtu").read_text(encoding="ascii").strip())
