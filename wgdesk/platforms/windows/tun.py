"""The engine's tunnel device on Windows: a Wintun session behind a socket the selector loop can watch.

The engine's loop is a `selectors` loop, and on Windows `select` takes sockets only — not the Win32
event the Wintun driver sets when packets arrive. So `WintunTun` bridges the two: a reader thread
waits (in ``WaitForMultipleObjects``, which releases the GIL) on the session's read-wait event and a
quit event, and on a packet wakes the loop by writing one byte into a socket pair whose other end is
the device's `fd`. The loop then calls `read_batch`, which drains the ring.

No wake-up is lost: the driver sets the read-wait event only after a receive found the ring empty
(wireguard-go's ``tun_windows.go`` waits the same way), so `read_batch` takes the wake bytes only at
such a point and then tries the ring once more; a packet arriving after that sets the event and the
thread writes a new byte. When `read_batch` stops at its limit with packets left, it makes sure the
socket stays readable so the loop comes back.

The engine opens its adapter itself (`WintunDriver.create`): a Wintun session cannot be handed to
another process the way Linux passes a TUN descriptor, so `adopt` refuses.
"""

from __future__ import annotations

import ctypes
import socket
import threading
from contextlib import suppress
from pathlib import Path
from typing import Any

from wgdesk.platforms.interface import Tun, TunError
from wgdesk.platforms.windows import dlls, wintun
from wgdesk.platforms.windows.iphelper import IpHelper

INFINITE = 0xFFFFFFFF
WAIT_OBJECT_0 = 0
WAIT_FAILED = 0xFFFFFFFF
HANDLE = ctypes.c_void_p


class Kernel32Events:
    """The four kernel32 calls the reader thread uses (``kernel32`` is the DLL or a fake with them)."""

    def __init__(self, kernel32: Any) -> None:
        self.kernel32 = kernel32

    def create(self) -> int:
        """A manual-reset event, not set."""
        handle = self.kernel32.CreateEventW(None, 1, 0, None)
        if not handle:
            raise TunError("cannot create an event (CreateEventW failed)")
        return int(handle)

    def wait_any(self, handles: tuple[int, ...]) -> int:
        """Index of the first handle set (blocks; ctypes releases the GIL), -1 on failure."""
        array = (HANDLE * len(handles))(*handles)
        result = int(self.kernel32.WaitForMultipleObjects(len(handles), array, 0, INFINITE))
        if result == WAIT_FAILED or result >= WAIT_OBJECT_0 + len(handles):
            return -1
        return result - WAIT_OBJECT_0

    def set(self, handle: int) -> None:
        self.kernel32.SetEvent(handle)

    def close(self, handle: int) -> None:
        self.kernel32.CloseHandle(handle)


class WintunTun:
    """A Wintun adapter and session as a `wgdesk.platforms.interface.Tun`."""

    gone_errnos: frozenset[int] = frozenset()
    """Reads raise `TunGone` themselves (``ERROR_HANDLE_EOF``); there is no errno to map."""
    vnet_hdr = False
    af_header = False
    offloads = 0

    def __init__(
        self,
        adapter: wintun.Adapter,
        session: wintun.Session,
        events: Kernel32Events,
        interfaces: IpHelper | None = None,
    ) -> None:
        self.adapter = adapter
        self.session = session
        self.name = adapter.name
        self.luid = adapter.luid()
        self.events = events
        self.interfaces = interfaces
        self.writes = 0
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self.fd = self._wake_r.fileno()
        self._quit = events.create()
        self.wakeups = 0
        """Bytes the reader thread wrote (times the driver woke it)."""
        self.failure = ""
        """Why the reader thread stopped early (empty while it runs)."""
        self._poke()  # packets may have arrived before the first receive: look once
        self._thread = threading.Thread(target=self._wait, name=f"wintun-{self.name}", daemon=True)
        self._thread.start()

    # -- the reader thread ----------------------------------------------------------------------------

    def _wait(self) -> None:
        handles = (self.session.read_wait_event, self._quit)
        while True:
            which = self.events.wait_any(handles)
            if which == 1:
                return
            if which != 0:
                self.failure = "WaitForMultipleObjects failed"
                self._poke()
                return
            self.wakeups += 1
            self._poke()

    def _poke(self) -> None:
        with suppress(BlockingIOError):  # the buffer is full: the socket is readable anyway
            self._wake_w.send(b"\0")

    def _drain(self) -> None:
        with suppress(BlockingIOError):
            while self._wake_r.recv(4096):
                pass

    # -- the engine's side ----------------------------------------------------------------------------

    def fileno(self) -> int:
        return self.fd

    def read_batch(self, limit: int) -> list[bytes]:
        """Up to ``limit`` packets from the ring. Raises `TunGone` when the adapter goes away."""
        if self.failure:
            raise OSError(f"{self.name}: {self.failure}")
        packets: list[bytes] = []
        receive = self.session.receive
        drained = False
        while len(packets) < limit:
            packet = receive()
            if packet is None:
                self._drain()
                drained = True
                packet = receive()
                if packet is None:
                    return packets
            packets.append(packet)
        if drained:
            self._poke()
        return packets

    def write_batch(self, packets: list[bytes]) -> int:
        """Hand packets to the system; returns how many were dropped (ring full, too long)."""
        send = self.session.send
        self.writes += len(packets)
        return sum(1 for packet in packets if not send(packet))

    def enable_offloads(self) -> int:
        return 0

    def _ip(self) -> IpHelper:
        if self.interfaces is None:
            raise OSError(f"{self.name}: no IP Helper")
        return self.interfaces

    def set_mtu(self, mtu: int) -> None:
        self._ip().set_mtu(self.luid, mtu)

    def mtu(self) -> int:
        return self._ip().mtu(self.luid)

    def index(self) -> int:
        return self._ip().index(self.luid)

    def close(self) -> None:
        """Stop the reader thread, end the session, remove the adapter."""
        self.events.set(self._quit)
        self._thread.join(5)
        self.session.end()
        self.adapter.close()
        self.events.close(self._quit)
        self._wake_r.close()
        self._wake_w.close()


class WintunDriver:
    """`wgdesk.platforms.interface.TunDriver` on Windows: the engine creates its adapter."""

    def __init__(self, dll_path: Path | None = None) -> None:
        self.dll_path = dll_path

    def create(self, name: str, mtu: int, vnet_hdr: bool) -> Tun:
        api = wintun.load(self.dll_path)
        adapter = api.create_adapter(name, wintun.tunnel_guid(name))
        try:
            session = adapter.start_session()
            interfaces = IpHelper.load()
            tun = WintunTun(adapter, session, Kernel32Events(dlls.load("kernel32")), interfaces)
            tun.set_mtu(mtu)
        except BaseException:
            adapter.close()
            raise
        return tun

    def adopt(self, fd: int) -> Tun:
        raise TunError("a Wintun session cannot be handed over: the engine creates its adapter (-f NAME)")
