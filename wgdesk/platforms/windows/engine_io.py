"""The engine's own I/O on Windows (`wgdesk.platforms.interface.EngineIO`).

The device is a Wintun session whose ``fd`` is only the wake-up socket of `tun.WintunTun`, so the
compiled data path (which reads and writes ``fd`` itself) cannot run: the engine takes the
pure-Python path, which goes through ``read_batch``/``write_batch``. The UAPI listener is the engine's
own named pipe at wireguard-go's path (`uapi_bridge.UapiBridge`; nothing on disk). Windows has no
fwmark, so the engine's UDP sockets are pinned to the best default interface that is not a tunnel —
neither its own adapter nor any other Wintun adapter, so two full tunnels cannot route one engine's
UDP into the other (`defaultroute.UdpPinning`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from wgdesk.platforms.interface import Tun, TunError, UapiListener
from wgdesk.platforms.windows.defaultroute import UdpPinning
from wgdesk.platforms.windows.iphelper import IpHelper
from wgdesk.platforms.windows.pipe_connection import UsesWin32, Win32
from wgdesk.platforms.windows.tun import WintunTun
from wgdesk.platforms.windows.uapi_bridge import UapiBridge


class WindowsEngineIO(UsesWin32):
    """What a Windows engine needs besides its Wintun adapter; ``ip`` gives the IP Helper API
    (loaded on first use, shared with the backend)."""

    compiled_reads_device = False

    def __init__(self, ip: Callable[[], IpHelper], w: Win32 | None = None) -> None:
        self.ip = ip
        self._w = w

    def listen_uapi(self, ifname: str) -> tuple[UapiListener, Path | None]:
        return UapiBridge(ifname, self.w), None

    def guard_udp(self, tun: Tun) -> UdpPinning:
        if not isinstance(tun, WintunTun):
            raise TunError(f"{tun.name}: not a Wintun adapter, cannot keep the engine's UDP out of it")
        return UdpPinning(self.ip(), {tun.luid})
