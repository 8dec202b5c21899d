"""Fakes of the Windows DLLs wgdesk calls (the OS boundary we cannot run here): objects with the same
functions as ``wintun.dll`` and ``kernel32.dll`` that record every call and behave as the documentation
says — the receive ring sets its read-wait event only after a receive found it empty (``Alertable``),
events are manual- or auto-reset as created."""

from __future__ import annotations

import ctypes
import threading
from collections import deque
from typing import Any

from wgdesk.platforms.windows import wintun

WAIT_TIMEOUT = 0x102


class FakeKernel32:
    """Win32 events: ``CreateEventW``, ``SetEvent``, ``WaitForMultipleObjects``, ``CloseHandle``."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.events: dict[int, list[bool]] = {}  # handle -> [set, manual_reset]
        self.next_handle = 0x1000
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self.closed: list[int] = []

    def CreateEventW(self, attributes: Any, manual: int, initial: int, name: Any) -> int:
        with self.cond:
            self.next_handle += 4
            self.events[self.next_handle] = [bool(initial), bool(manual)]
            self.calls.append(("CreateEventW", (attributes, manual, initial, name)))
            return self.next_handle

    def SetEvent(self, handle: int) -> int:
        with self.cond:
            self.calls.append(("SetEvent", (handle,)))
            self.events[handle][0] = True
            self.cond.notify_all()
            return 1

    def WaitForMultipleObjects(self, count: int, handles: Any, wait_all: int, timeout: int) -> int:
        wanted = [int(handles[i]) for i in range(count)]
        assert not wait_all
        with self.cond:
            self.calls.append(("WaitForMultipleObjects", (tuple(wanted), wait_all, timeout)))
            while True:
                for index, handle in enumerate(wanted):
                    state = self.events[handle]
                    if state[0]:
                        if not state[1]:
                            state[0] = False
                        return index
                if not self.cond.wait(timeout=None if timeout == 0xFFFFFFFF else timeout / 1000):
                    return WAIT_TIMEOUT

    def CloseHandle(self, handle: int) -> int:
        with self.cond:
            self.closed.append(handle)
            return 1


class FakeWintun:
    """``wintun.dll`` with one adapter and one session: `inject` is the system sending a packet into
    the tunnel, `sent` what we handed to the system."""

    ADAPTER = 0xA0
    SESSION = 0x50
    LUID = 0x0006_0000_0123_4567

    def __init__(self, kernel: FakeKernel32) -> None:
        self.kernel = kernel
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self.lock = threading.Lock()
        self.ring: deque[bytes] = deque()
        self.alertable = False
        self.read_event = kernel.CreateEventW(None, 0, 0, None)  # the driver's: auto-reset
        self.error = 0
        self.outstanding: dict[int, ctypes.Array[ctypes.c_char]] = {}
        self.allocated: dict[int, tuple[ctypes.Array[ctypes.c_char], int]] = {}
        self.sent: list[bytes] = []
        self.send_ring_full = False
        self.terminating = False

    def last_error(self) -> int:
        return self.error

    def _call(self, name: str, *args: Any) -> None:
        self.calls.append((name, args))

    # -- the driver's side ------------------------------------------------------------------------

    def inject(self, *packets: bytes) -> None:
        with self.lock:
            self.ring.extend(packets)
            wake = self.alertable
            self.alertable = False
        if wake:
            self.kernel.SetEvent(self.read_event)

    # -- the API ------------------------------------------------------------------------------------

    def WintunCreateAdapter(self, name: str, tunnel_type: str, guid: Any) -> int:
        self._call(
            "WintunCreateAdapter", name, tunnel_type, ctypes.string_at(ctypes.addressof(guid._obj), 16)
        )
        return self.ADAPTER

    def WintunOpenAdapter(self, name: str) -> int:
        self._call("WintunOpenAdapter", name)
        return self.ADAPTER

    def WintunGetAdapterLUID(self, adapter: int, luid: Any) -> None:
        self._call("WintunGetAdapterLUID", adapter)
        luid._obj.Value = self.LUID

    def WintunGetRunningDriverVersion(self) -> int:
        return 0x0000_000E

    def WintunStartSession(self, adapter: int, capacity: int) -> int:
        self._call("WintunStartSession", adapter, capacity)
        return self.SESSION

    def WintunGetReadWaitEvent(self, session: int) -> int:
        self._call("WintunGetReadWaitEvent", session)
        return self.read_event

    def WintunReceivePacket(self, session: int, size: ctypes.c_uint32) -> int:
        assert session == self.SESSION
        with self.lock:
            if self.terminating:
                self._call("WintunReceivePacket", session)
                self.error = wintun.ERROR_HANDLE_EOF
                return 0
            if not self.ring:
                self._call("WintunReceivePacket", session)
                self.alertable = True
                self.error = wintun.ERROR_NO_MORE_ITEMS
                return 0
            packet = self.ring.popleft()
        buffer = ctypes.create_string_buffer(packet, len(packet))
        address = ctypes.addressof(buffer)
        self.outstanding[address] = buffer
        size.value = len(packet)
        self._call("WintunReceivePacket", session)
        return address

    def WintunReleaseReceivePacket(self, session: int, packet: int) -> None:
        assert packet in self.outstanding, "released a packet not received"
        del self.outstanding[packet]
        self._call("WintunReleaseReceivePacket", session)

    def WintunAllocateSendPacket(self, session: int, size: int) -> int:
        self._call("WintunAllocateSendPacket", session, size)
        if self.terminating:
            self.error = wintun.ERROR_HANDLE_EOF
            return 0
        if self.send_ring_full:
            self.error = wintun.ERROR_BUFFER_OVERFLOW
            return 0
        buffer = ctypes.create_string_buffer(size)
        self.allocated[ctypes.addressof(buffer)] = (buffer, size)
        return ctypes.addressof(buffer)

    def WintunSendPacket(self, session: int, packet: int) -> None:
        buffer, size = self.allocated.pop(packet)
        self.sent.append(ctypes.string_at(buffer, size))
        self._call("WintunSendPacket", session)

    def WintunEndSession(self, session: int) -> None:
        self._call("WintunEndSession", session)

    def WintunCloseAdapter(self, adapter: int) -> None:
        self._call("WintunCloseAdapter", adapter)


def struct_bytes(argument: Any) -> bytes:
    """The bytes of a structure passed by ``ctypes.byref``."""
    value = argument._obj
    return ctypes.string_at(ctypes.addressof(value), ctypes.sizeof(value))


class FakeIpHlpApi:
    """``iphlpapi.dll``: records each call with the bytes of its row; ``Initialize*`` set what the
    documentation says they set (infinite lifetimes, unspecified values), ``GetIpInterfaceEntry`` answers
    from `interfaces` ((luid, family) → (mtu, metric, automatic)); ``fail`` maps a function name to the
    status it returns."""

    def __init__(self, dns_api: bool = True) -> None:
        self.calls: list[tuple[str, bytes]] = []
        self.interfaces: dict[tuple[int, int], tuple[int, int, int]] = {}
        self.fail: dict[str, int] = {}
        self.dns: list[tuple[bytes, int, int, str, str]] = []
        if dns_api:  # Windows 10 2004 and later (older: the DLL has no such function)
            self.SetInterfaceDnsSettings = self._set_interface_dns_settings

    def _record(self, name: str, row: Any) -> int:
        self.calls.append((name, struct_bytes(row)))
        return self.fail.get(name, 0)

    def InitializeUnicastIpAddressEntry(self, row: Any) -> None:
        ctypes.memset(ctypes.addressof(row._obj), 0, ctypes.sizeof(row._obj))
        row._obj.ValidLifetime = row._obj.PreferredLifetime = 0xFFFFFFFF
        row._obj.PrefixOrigin = row._obj.SuffixOrigin = 1  # IpPrefixOriginManual, IpSuffixOriginManual

    def InitializeIpForwardEntry(self, row: Any) -> None:
        ctypes.memset(ctypes.addressof(row._obj), 0, ctypes.sizeof(row._obj))
        row._obj.ValidLifetime = row._obj.PreferredLifetime = 0xFFFFFFFF
        row._obj.Protocol = 3  # MIB_IPPROTO_NETMGMT
        row._obj.Metric = 0xFFFFFFFF

    def InitializeIpInterfaceEntry(self, row: Any) -> None:
        ctypes.memset(ctypes.addressof(row._obj), 0xFF, ctypes.sizeof(row._obj))

    def CreateUnicastIpAddressEntry(self, row: Any) -> int:
        return self._record("CreateUnicastIpAddressEntry", row)

    def DeleteUnicastIpAddressEntry(self, row: Any) -> int:
        return self._record("DeleteUnicastIpAddressEntry", row)

    def CreateIpForwardEntry2(self, row: Any) -> int:
        return self._record("CreateIpForwardEntry2", row)

    def DeleteIpForwardEntry2(self, row: Any) -> int:
        return self._record("DeleteIpForwardEntry2", row)

    def GetIpInterfaceEntry(self, row: Any) -> int:
        key = (row._obj.InterfaceLuid.Value, row._obj.Family)
        if key not in self.interfaces:
            return 1168  # ERROR_NOT_FOUND
        row._obj.NlMtu, row._obj.Metric, row._obj.UseAutomaticMetric = self.interfaces[key]
        row._obj.SitePrefixLength = 64
        return 0

    def SetIpInterfaceEntry(self, row: Any) -> int:
        return self._record("SetIpInterfaceEntry", row)

    def ConvertInterfaceLuidToIndex(self, luid: Any, index: Any) -> int:
        index._obj.value = luid._obj.Value & 0xFFFF
        return 0

    def _set_interface_dns_settings(self, guid: Any, settings: Any) -> int:
        s = settings._obj

        def text(pointer: int | None) -> str:
            if not pointer:
                return "<null>"
            raw = b""
            while not raw.endswith(b"\0\0") or len(raw) % 2:
                raw += ctypes.string_at(pointer + len(raw), 1)
            return raw[:-2].decode("utf-16-le")

        self.dns.append((bytes(guid), s.Version, s.Flags, text(s.NameServer), text(s.SearchList)))
        return self.fail.get("SetInterfaceDnsSettings", 0)


class FakeRegistry:
    def __init__(self) -> None:
        self.values: dict[tuple[str, str], str] = {}

    def set_string(self, key: str, name: str, value: str) -> None:
        self.values[(key, name)] = value
