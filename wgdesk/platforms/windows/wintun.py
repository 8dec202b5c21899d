"""The binding to ``wintun.dll``: its documented C API (``wintun.h``) through ctypes, nothing more.

Why our own binding: the ``pywintun*`` packages are GPL and bundle unrelated drivers (issue 16), and
the API is fifteen functions. The DLL is loaded lazily (`load`), so this module imports on every OS and
its tests run against a fake DLL object with the same functions (``tests/windows/fake_wintun.py``).

Who does what: an adapter (`Adapter`) is the network interface, created with a GUID fixed per tunnel
(`tunnel_guid`) so Windows keeps one "network" for it across restarts instead of a new
"Network 5" each time; a session (`Session`) is the pair of packet rings between us and the driver.
`Session.receive` returns a packet or None when the ring is empty — the caller then waits on
`Session.read_wait_event` (a Win32 event the driver sets when the ring has something again), which
is what `wgdesk.platforms.windows.tun` does in a thread of its own.
"""

from __future__ import annotations

import ctypes
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from wgdesk.platforms.errors import PlatformError
from wgdesk.platforms.interface import TunError, TunGone
from wgdesk.platforms.windows import dlls
from wgdesk.platforms.windows.structures import GUID, NET_LUID

ERROR_HANDLE_EOF = 38
"""The adapter is going away (``ReceivePacket``/``AllocateSendPacket``)."""
ERROR_INVALID_DATA = 13
"""The ring is corrupt."""
ERROR_BUFFER_OVERFLOW = 111
"""The send ring is full (``AllocateSendPacket``): the packet is dropped."""
ERROR_NO_MORE_ITEMS = 259
"""The receive ring is empty: wait on the read-wait event."""

MIN_RING_CAPACITY = 0x20000
"""``WINTUN_MIN_RING_CAPACITY`` (128 KiB)."""
MAX_RING_CAPACITY = 0x4000000
"""``WINTUN_MAX_RING_CAPACITY`` (64 MiB)."""
RING_CAPACITY = 0x800000
"""What wireguard-go asks for (8 MiB): a power of two between the two."""
MAX_IP_PACKET_SIZE = 0xFFFF

TUNNEL_TYPE = "wgdesk"
"""The adapter's tunnel type (shown as its description's prefix)."""

GUID_NAMESPACE = uuid.UUID("9a1cfa0e-2e55-4c3a-9d36-4d6c0f5b7c8e")
"""The namespace `tunnel_guid` derives adapter GUIDs in (ours: no other program's adapters collide)."""

_BYTE_P = ctypes.c_void_p
_HANDLE = ctypes.c_void_p
_DWORD = ctypes.c_uint32
_BOOL = ctypes.c_int32

SIGNATURES: dict[str, tuple[Any, tuple[Any, ...]]] = {
    "WintunCreateAdapter": (_HANDLE, (ctypes.c_wchar_p, ctypes.c_wchar_p, ctypes.POINTER(GUID))),
    "WintunOpenAdapter": (_HANDLE, (ctypes.c_wchar_p,)),
    "WintunCloseAdapter": (None, (_HANDLE,)),
    "WintunGetAdapterLUID": (None, (_HANDLE, ctypes.POINTER(NET_LUID))),
    "WintunGetRunningDriverVersion": (_DWORD, ()),
    "WintunDeleteDriver": (_BOOL, ()),
    "WintunStartSession": (_HANDLE, (_HANDLE, _DWORD)),
    "WintunEndSession": (None, (_HANDLE,)),
    "WintunGetReadWaitEvent": (_HANDLE, (_HANDLE,)),
    "WintunReceivePacket": (_BYTE_P, (_HANDLE, ctypes.POINTER(_DWORD))),
    "WintunReleaseReceivePacket": (None, (_HANDLE, _BYTE_P)),
    "WintunAllocateSendPacket": (_BYTE_P, (_HANDLE, _DWORD)),
    "WintunSendPacket": (None, (_HANDLE, _BYTE_P)),
}
"""Return and argument types of the functions used, as ``wintun.h`` declares them (``WINAPI``: stdcall,
which is the only convention on x64 and arm64)."""


def tunnel_guid(name: str) -> uuid.UUID:
    """The adapter GUID of tunnel ``name``: the same on every bring-up (a name-based UUID)."""
    return uuid.uuid5(GUID_NAMESPACE, name)


def guid_struct(value: uuid.UUID) -> GUID:
    """``value`` as the C ``GUID`` (its first three fields are little-endian integers)."""
    guid = GUID()
    ctypes.memmove(ctypes.addressof(guid), value.bytes_le, ctypes.sizeof(GUID))
    return guid


class Wintun:
    """The loaded DLL and how to read the thread's last Win32 error (``GetLastError``)."""

    def __init__(self, dll: Any, last_error: Callable[[], int]) -> None:
        self.dll = dll
        self.last_error = last_error

    def create_adapter(self, name: str, guid: uuid.UUID) -> Adapter:
        """Create adapter ``name`` with ``guid`` (or take over the one left with that GUID)."""
        handle = self.dll.WintunCreateAdapter(name, TUNNEL_TYPE, ctypes.byref(guid_struct(guid)))
        if not handle:
            raise TunError(f"cannot create Wintun adapter {name}: {_win_error(self.last_error())}")
        return Adapter(self, handle, name)

    def open_adapter(self, name: str) -> Adapter:
        handle = self.dll.WintunOpenAdapter(name)
        if not handle:
            raise TunError(f"no Wintun adapter {name}: {_win_error(self.last_error())}")
        return Adapter(self, handle, name)

    def delete_driver(self) -> bool:
        """Remove the Wintun driver from the system if no adapter uses it any more (uninstall)."""
        return bool(self.dll.WintunDeleteDriver())

    def driver_version(self) -> int:
        """The running driver's version (0 when none is loaded)."""
        return int(self.dll.WintunGetRunningDriverVersion())


class Adapter:
    """One Wintun adapter (a network interface); closing it removes it."""

    def __init__(self, wintun: Wintun, handle: int, name: str) -> None:
        self.wintun = wintun
        self.handle = handle
        self.name = name

    def luid(self) -> int:
        """The interface's LUID: what the IP Helper API and WFP name it by."""
        luid = NET_LUID()
        self.wintun.dll.WintunGetAdapterLUID(self.handle, ctypes.byref(luid))
        return int(luid.Value)

    def start_session(self, capacity: int = RING_CAPACITY) -> Session:
        if capacity & (capacity - 1) or not MIN_RING_CAPACITY <= capacity <= MAX_RING_CAPACITY:
            raise ValueError(f"ring capacity {capacity}: a power of two from 128 KiB to 64 MiB")
        handle = self.wintun.dll.WintunStartSession(self.handle, capacity)
        if not handle:
            raise TunError(f"cannot start a session on {self.name}: {_win_error(self.wintun.last_error())}")
        return Session(self.wintun, handle)

    def close(self) -> None:
        if self.handle:
            self.wintun.dll.WintunCloseAdapter(self.handle)
            self.handle = 0


class Session:
    """The packet rings of one adapter."""

    def __init__(self, wintun: Wintun, handle: int) -> None:
        self.dll = wintun.dll
        self.last_error = wintun.last_error
        self.handle = handle
        self.read_wait_event: int = self.dll.WintunGetReadWaitEvent(handle)
        """Set by the driver when the receive ring has a packet again (do not close it)."""
        self._size = _DWORD()

    def receive(self) -> bytes | None:
        """The next packet the system sent into the tunnel (copied; the ring slot is released), or None
        when the ring is empty. Raises `TunGone` when the adapter is going away."""
        size = self._size
        packet = self.dll.WintunReceivePacket(self.handle, size)
        if not packet:
            error = self.last_error()
            if error == ERROR_NO_MORE_ITEMS:
                return None
            if error == ERROR_HANDLE_EOF:
                raise TunGone("wintun")
            raise OSError(f"Wintun receive failed: {_win_error(error)}")
        try:
            return ctypes.string_at(packet, size.value)
        finally:
            self.dll.WintunReleaseReceivePacket(self.handle, packet)

    def send(self, packet: bytes) -> bool:
        """Hand ``packet`` to the system; False when the ring is full (dropped). Raises `TunGone`."""
        size = len(packet)
        if not 0 < size <= MAX_IP_PACKET_SIZE:
            return False
        slot = self.dll.WintunAllocateSendPacket(self.handle, size)
        if not slot:
            error = self.last_error()
            if error == ERROR_HANDLE_EOF:
                raise TunGone("wintun")
            return False
        ctypes.memmove(slot, packet, size)
        self.dll.WintunSendPacket(self.handle, slot)
        return True

    def end(self) -> None:
        if self.handle:
            self.dll.WintunEndSession(self.handle)
            self.handle = 0


def _win_error(code: int) -> str:
    return dlls.describe(code)


def load(path: Path | None = None) -> Wintun:
    """Load ``wintun.dll`` (by default the one beside the running program: never from the search
    path). Raises `TunError` off Windows or when it is missing."""
    where = path or Path(sys.executable).with_name("wintun.dll")
    try:
        dll = dlls.load(where)
    except (OSError, PlatformError) as exc:
        raise TunError(f"cannot load {where}: {exc} (Wintun is a Windows driver; reinstall wgdesk)") from exc
    return Wintun(dlls.declare(dll, SIGNATURES), dlls.last_error)
