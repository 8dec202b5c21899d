"""Fakes of the Windows DLLs wgdesk calls (the OS boundary we cannot run here): objects with the same
functions as ``wintun.dll`` and ``kernel32.dll`` that record every call and behave as the documentation
says — the receive ring sets its read-wait event only after a receive found it empty (``Alertable``),
events are manual- or auto-reset as created."""

from __future__ import annotations

import ctypes
import threading
import time
from collections import deque
from typing import Any

from wgdesk.platforms.windows import pipes, wintun
from wgdesk.platforms.windows.pipe_connection import (
    ERROR_IO_PENDING,
    ERROR_PIPE_CONNECTED,
    WAIT_TIMEOUT,
    Win32,
)
from wgdesk.platforms.windows.structures import (
    FWP_BYTE_BLOB,
    FWP_V4_ADDR_AND_MASK,
    FWP_V6_ADDR_AND_MASK,
    FWPM_FILTER0,
    FWPM_FILTER_CONDITION0,
    GUID,
)


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

    def WintunDeleteDriver(self) -> int:
        self._call("WintunDeleteDriver")
        return 1

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
        self.interfaces: dict[tuple[int, int], tuple[int, ...]] = {}
        self.routes: list[tuple[int, int, int, int, int]] = []  # (family, luid, index, prefix length, metric)
        self.tables: dict[int, Any] = {}
        self.freed: list[int] = []
        self.callback: Any = None
        self.aliases: dict[str, int] = {}
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
        mtu, metric, automatic, *connected = self.interfaces[key]
        row._obj.NlMtu, row._obj.Metric, row._obj.UseAutomaticMetric = mtu, metric, automatic
        row._obj.Connected = connected[0] if connected else 1
        row._obj.SitePrefixLength = 64
        return 0

    def SetIpInterfaceEntry(self, row: Any) -> int:
        return self._record("SetIpInterfaceEntry", row)

    def GetIpForwardTable2(self, family: int, table: Any) -> int:
        from wgdesk.platforms.windows.structures import MIB_IPFORWARD_ROW2, MIB_IPFORWARD_TABLE2

        self.calls.append(("GetIpForwardTable2", family.to_bytes(2, "little")))
        rows = [r for r in self.routes if r[0] == family]
        start = MIB_IPFORWARD_TABLE2.Table.offset
        size = max(ctypes.sizeof(MIB_IPFORWARD_TABLE2), start + len(rows) * ctypes.sizeof(MIB_IPFORWARD_ROW2))
        buffer = ctypes.create_string_buffer(size)
        MIB_IPFORWARD_TABLE2.from_buffer(buffer).NumEntries = len(rows)
        array = (MIB_IPFORWARD_ROW2 * len(rows)).from_buffer(buffer, start)
        for row, (fam, luid, index, prefix, metric) in zip(array, rows, strict=True):
            row.InterfaceLuid.Value, row.InterfaceIndex, row.Metric = luid, index, metric
            row.DestinationPrefix.PrefixLength = prefix
            row.DestinationPrefix.Prefix.si_family = fam
        self.tables[ctypes.addressof(buffer)] = buffer
        table._obj.value = ctypes.addressof(buffer)
        return 0

    def FreeMibTable(self, table: Any) -> None:
        address = table.value
        assert address in self.tables, "freed a table not handed out"
        del self.tables[address]
        self.freed.append(address)

    def NotifyRouteChange2(self, family: int, callback: Any, context: Any, initial: int, handle: Any) -> int:
        self.calls.append(("NotifyRouteChange2", bytes([family, initial])))
        self.callback = callback
        handle._obj.value = 0x7FF6_1234_5670  # a 64-bit handle: a C int cannot carry it
        return 0

    def CancelMibChangeNotify2(self, handle: ctypes.c_void_p) -> int:
        assert isinstance(handle, ctypes.c_void_p), "a HANDLE goes as a pointer, not a C int"
        self.calls.append(("CancelMibChangeNotify2", (handle.value or 0).to_bytes(8, "little")))
        self.callback = None
        return 0

    def ConvertInterfaceAliasToLuid(self, alias: Any, luid: Any) -> int:
        name = read_wide(ctypes.addressof(alias))
        self.calls.append(("ConvertInterfaceAliasToLuid", name.encode()))
        if name not in self.aliases:
            return 1168
        luid._obj.Value = self.aliases[name]
        return 0

    def ConvertInterfaceLuidToGuid(self, luid: Any, guid: Any) -> int:
        import uuid as _uuid

        value = _uuid.UUID(int=luid._obj.Value)
        ctypes.memmove(ctypes.addressof(guid._obj), value.bytes_le, 16)
        return 0

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


def read_wide(pointer: int | None) -> str:
    if not pointer:
        return ""
    raw = b""
    while True:
        pair = ctypes.string_at(pointer + len(raw), 2)
        if pair == b"\0\0":
            return raw.decode("utf-16-le")
        raw += pair


class FakeFwpuclnt:
    """``fwpuclnt.dll``: records the call sequence, decodes every filter added back into plain values
    (layer and field GUIDs, weights, condition values read through their pointers), and fails the
    call named in `fail` (name → (nth call, status)). Enumeration without a template hands out real
    ``FWPM_FILTER0`` rows (key, provider) of what is in place as the transaction sees it, in batches
    of the size asked for, plus `foreign` filters (other programs': key → provider or None); boot-time
    filters are left out of it (an enumeration includes them only when a template asks)."""

    HANDLE = 0xE0

    def __init__(self) -> None:
        import uuid as _uuid

        from wgdesk.platforms.windows import wfp

        self.uuid = _uuid
        self.wfp = wfp
        self.calls: list[str] = []
        self.session_flags: int | None = None
        self.added: list[dict[str, Any]] = []
        self.deleted: list[str] = []
        self.present: set[str] = set()
        """Filter keys in place (committed); `pending`/`pending_deletes`: this transaction's."""
        self.pending: set[str] = set()
        self.pending_deletes: set[str] = set()
        self.provider: tuple[str, int] | None = None
        self.sublayer: tuple[str, int, int, str] | None = None
        self.fail: dict[str, tuple[int, int]] = {}
        self.counts: dict[str, int] = {}
        self.freed: list[int] = []
        self.app_blobs: dict[int, tuple[ctypes.Array[ctypes.c_char], FWP_BYTE_BLOB]] = {}
        self.owners: dict[str, tuple[str, int]] = {}
        """Filter key → (provider, flags), for every filter ever added."""
        self.foreign: dict[str, str | None] = {}
        self.enumerating: list[tuple[str, str | None]] | None = None
        self.enum_memory: list[Any] = []

    def _status(self, name: str) -> int:
        self.calls.append(name)
        self.counts[name] = self.counts.get(name, 0) + 1
        nth, status = self.fail.get(name, (0, 0))
        return status if self.counts[name] == nth else 0

    def _guid(self, guid: Any) -> str:
        return str(self.uuid.UUID(bytes_le=ctypes.string_at(ctypes.addressof(guid), 16)))

    def FwpmEngineOpen0(self, server: Any, authn: int, identity: Any, session: Any, handle: Any) -> int:
        assert server is None and identity is None and authn == 10
        self.session_flags = session._obj.flags
        assert read_wide(session._obj.displayData.name)
        handle._obj.value = self.HANDLE
        return self._status("FwpmEngineOpen0")

    def FwpmEngineClose0(self, handle: int) -> int:
        return self._status("FwpmEngineClose0")

    def FwpmTransactionBegin0(self, handle: int, flags: int) -> int:
        assert handle == self.HANDLE
        return self._status("FwpmTransactionBegin0")

    def FwpmTransactionCommit0(self, handle: int) -> int:
        status = self._status("FwpmTransactionCommit0")
        if not status:
            self.present = (self.present - self.pending_deletes) | self.pending
        self.pending, self.pending_deletes = set(), set()
        return status

    def FwpmTransactionAbort0(self, handle: int) -> int:
        self.pending, self.pending_deletes = set(), set()
        return self._status("FwpmTransactionAbort0")

    def _exists(self, key: str) -> bool:
        """In place as this transaction sees it."""
        return key in self.pending or (key in self.present and key not in self.pending_deletes)

    def FwpmGetAppIdFromFileName0(self, name: int, blob: Any) -> int:
        data = ctypes.create_string_buffer(("\\device\\" + read_wide(name)).encode("utf-16-le"))
        header = FWP_BYTE_BLOB(len(data) - 1, ctypes.addressof(data))
        self.app_blobs[ctypes.addressof(header)] = (data, header)
        blob._obj.value = ctypes.addressof(header)
        return self._status("FwpmGetAppIdFromFileName0")

    def FwpmFreeMemory0(self, pointer: Any) -> None:
        self.calls.append("FwpmFreeMemory0")
        self.freed.append(pointer._obj.value)

    def FwpmProviderAdd0(self, handle: int, provider: Any, sd: Any) -> int:
        p = provider._obj
        self.provider = (self._guid(p.providerKey), p.flags)
        return self._status("FwpmProviderAdd0")

    def FwpmSubLayerAdd0(self, handle: int, sublayer: Any, sd: Any) -> int:
        s = sublayer._obj
        provider = self._guid(GUID.from_address(s.providerKey))
        self.sublayer = (self._guid(s.subLayerKey), s.flags, s.weight, provider)
        return self._status("FwpmSubLayerAdd0")

    def _value(self, value: Any) -> tuple[str, int | str]:
        w = self.wfp
        if value.type == w.FWP_UINT8:
            return "uint8", value.uint8
        if value.type == w.FWP_UINT16:
            return "uint16", value.uint16
        if value.type == w.FWP_UINT32:
            return "uint32", value.uint32
        if value.type == w.FWP_UINT64:
            return "uint64", ctypes.c_uint64.from_address(value.pointer).value
        if value.type == w.FWP_BYTE_ARRAY16_TYPE:
            from ipaddress import IPv6Address

            return "v6_address", str(IPv6Address(ctypes.string_at(value.pointer, 16)))
        if value.type == w.FWP_V4_ADDR_MASK:
            from ipaddress import IPv4Network

            mask = FWP_V4_ADDR_AND_MASK.from_address(value.pointer)
            return "v4_mask", str(IPv4Network((mask.addr, bin(mask.mask).count("1"))))
        if value.type == w.FWP_V6_ADDR_MASK:
            from ipaddress import IPv6Network

            mask6 = FWP_V6_ADDR_AND_MASK.from_address(value.pointer)
            return "v6_mask", str(IPv6Network((bytes(mask6.addr), mask6.prefixLength)))
        if value.type == w.FWP_BYTE_BLOB_TYPE:
            blob = FWP_BYTE_BLOB.from_address(value.pointer)
            return "app_id", ctypes.string_at(blob.data, blob.size).decode("utf-16-le")
        raise AssertionError(f"unexpected value type {value.type}")

    def FwpmFilterAdd0(self, handle: int, row: Any, sd: Any, identifier: Any) -> int:
        f = row._obj
        w = self.wfp
        layers = {str(v): k for k, v in w.LAYER_KEYS.items()}
        fields = {str(v): k for k, v in w.CONDITION_KEYS.items() if k != "ICMP_TYPE"}
        matches = {v: k for k, v in w.MATCHES.items()}
        conditions = []
        if f.numFilterConditions:
            array = (FWPM_FILTER_CONDITION0 * f.numFilterConditions).from_address(f.filterCondition)
            for c in array:
                kind, value = self._value(c.conditionValue)
                conditions.append([fields[self._guid(c.fieldKey)], matches[c.matchType], kind, value])
        assert f.weight.type == w.FWP_UINT8
        self.added.append(
            {
                "key": self._guid(f.filterKey),
                "name": read_wide(f.displayData.name),
                "flags": f.flags,
                "provider": self._guid(GUID.from_address(f.providerKey)),
                "layer": layers[self._guid(f.layerKey)],
                "sublayer": self._guid(f.subLayerKey),
                "weight": f.weight.uint8,
                "action": {w.FWP_ACTION_PERMIT: "permit", w.FWP_ACTION_BLOCK: "block"}[f.action.type],
                "conditions": conditions,
            }
        )
        identifier._obj.value = len(self.added)
        key = self.added[-1]["key"]
        self.owners[key] = (self.added[-1]["provider"], f.flags)
        if self._exists(key):
            self.calls.append("FwpmFilterAdd0")
            return self.wfp.FWP_E_ALREADY_EXISTS
        status = self._status("FwpmFilterAdd0")
        if not status:
            self.pending.add(key)
        return status

    def FwpmFilterGetByKey0(self, handle: int, key: Any, found: Any) -> int:
        self.calls.append("FwpmFilterGetByKey0")
        wanted = self._guid(key._obj)
        if wanted in self.present:
            found._obj.value = 0x5A
            return 0
        return self.wfp.FWP_E_FILTER_NOT_FOUND

    def FwpmFilterDeleteByKey0(self, handle: int, key: Any) -> int:
        wanted = self._guid(key._obj)
        self.deleted.append(wanted)
        status = self._status("FwpmFilterDeleteByKey0")
        if status:
            return status
        if not self._exists(wanted):
            return self.wfp.FWP_E_FILTER_NOT_FOUND
        self.pending.discard(wanted)
        self.pending_deletes.add(wanted)
        return 0

    def FwpmFilterCreateEnumHandle0(self, handle: int, template: Any, enum: Any) -> int:
        assert handle == self.HANDLE and template is None
        ours = [
            (key, provider)
            for key, (provider, flags) in self.owners.items()
            if self._exists(key) and not flags & self.wfp.FWPM_FILTER_FLAG_BOOTTIME
        ]
        self.enumerating = list(self.foreign.items()) + ours
        enum._obj.value = 0xE1
        return self._status("FwpmFilterCreateEnumHandle0")

    def FwpmFilterEnum0(self, handle: int, enum: int, wanted: int, entries: Any, returned: Any) -> int:
        assert handle == self.HANDLE and enum == 0xE1 and self.enumerating is not None
        batch, self.enumerating = self.enumerating[:wanted], self.enumerating[wanted:]
        rows = []
        for key, provider in batch:
            row = FWPM_FILTER0()
            row.filterKey = wintun.guid_struct(self.uuid.UUID(key))
            if provider is not None:
                guid = wintun.guid_struct(self.uuid.UUID(provider))
                self.enum_memory.append(guid)
                row.providerKey = ctypes.addressof(guid)
            rows.append(row)
        self.enum_memory += rows
        if rows:
            array = (ctypes.c_void_p * len(rows))(*(ctypes.addressof(r) for r in rows))
            self.enum_memory.append(array)
            entries._obj.value = ctypes.addressof(array)
        returned._obj.value = len(rows)
        return self._status("FwpmFilterEnum0")

    def FwpmFilterDestroyEnumHandle0(self, handle: int, enum: int) -> int:
        assert enum == 0xE1
        self.enumerating = None
        return self._status("FwpmFilterDestroyEnumHandle0")

    def FwpmSubLayerDeleteByKey0(self, handle: int, key: Any) -> int:
        self.deleted.append(self._guid(key._obj))
        return self._status("FwpmSubLayerDeleteByKey0")

    def FwpmProviderDeleteByKey0(self, handle: int, key: Any) -> int:
        self.deleted.append(self._guid(key._obj))
        return self._status("FwpmProviderDeleteByKey0")


USER = "S-1-5-21-1004336348-1177238915-682003330-1001"
GROUP = "S-1-5-21-1004336348-1177238915-682003330-1013"


class Error(Exception):
    def __init__(self, winerror: int, strerror: str = "error") -> None:
        super().__init__(winerror, strerror)
        self.winerror = winerror
        self.strerror = strerror


class Overlapped:
    hEvent: Any = None
    result = 0


class FakeWin32:
    """All six pywin32 modules in one object; ``waits`` scripts WaitForSingleObject's answers."""

    TokenUser, TokenGroups = 1, 2
    SECURITY_ATTRIBUTES = type("SECURITY_ATTRIBUTES", (), {"SECURITY_DESCRIPTOR": None})
    OVERLAPPED = Overlapped
    error = Error

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.waits: deque[int] = deque()
        self.incoming: deque[bytes | int] = deque()
        self.written: list[bytes] = []
        self.write_chunk = 1 << 20
        self.write_error = 0
        self.create_error = 0
        self.handles = 0
        self.groups: list[tuple[str, int]] = [(GROUP, pipes.SE_GROUP_ENABLED)]
        self.clients: int | None = None
        """None: ConnectNamedPipe waits as `waits` says; a number: that many clients connect, then none."""
        self.idle: set[int] = set()

    def bundle(self) -> Win32:
        return Win32(self, self, self, self, self, self)

    # win32event
    def CreateEvent(self, *args: Any) -> str:
        return "event"

    def WaitForSingleObject(self, event: str, milliseconds: int) -> int:
        self.calls.append(("Wait", milliseconds))
        if threading.get_ident() in self.idle:
            self.idle.discard(threading.get_ident())
            time.sleep(0.01)
            return WAIT_TIMEOUT
        return self.waits.popleft() if self.waits else 0

    # win32pipe
    def CreateNamedPipe(self, name: str, open_mode: int, *rest: Any) -> str:
        self.calls.append(("CreateNamedPipe", name, open_mode, rest[-1].SECURITY_DESCRIPTOR))
        if self.create_error:
            raise Error(self.create_error)
        self.handles += 1
        return f"pipe{self.handles}"

    def ConnectNamedPipe(self, handle: str, overlapped: Overlapped) -> int:
        self.calls.append(("ConnectNamedPipe", handle))
        if self.clients is None:
            return ERROR_IO_PENDING  # the test scripts the wait
        if self.clients > 0:
            self.clients -= 1
            return ERROR_PIPE_CONNECTED
        self.idle.add(threading.get_ident())  # nobody else comes: this wait times out
        return ERROR_IO_PENDING

    def GetNamedPipeClientProcessId(self, handle: str) -> int:
        return 777

    def ImpersonateNamedPipeClient(self, handle: str) -> None:
        self.calls.append(("Impersonate", handle))

    # win32file
    def AllocateReadBuffer(self, size: int) -> bytearray:
        return bytearray(size)

    def ReadFile(self, handle: str, buffer: bytearray, overlapped: Overlapped) -> tuple[int, bytearray]:
        item = self.incoming.popleft()
        if isinstance(item, int):
            raise Error(item)
        buffer[: len(item)] = item
        overlapped.result = len(item)
        return ERROR_IO_PENDING, buffer

    def WriteFile(self, handle: str, data: bytes, overlapped: Overlapped) -> tuple[int, int]:
        if self.write_error:
            raise Error(self.write_error)
        chunk = data[: self.write_chunk]
        self.written.append(chunk)
        overlapped.result = len(chunk)
        return ERROR_IO_PENDING, len(chunk)

    def GetOverlappedResult(self, handle: str, overlapped: Overlapped, wait: bool) -> int:
        self.calls.append(("GetOverlappedResult", wait))
        return overlapped.result

    def CancelIo(self, handle: str) -> None:
        self.calls.append(("CancelIo", handle))

    # win32security
    def ConvertStringSecurityDescriptorToSecurityDescriptor(self, sddl: str, revision: int) -> str:
        return sddl

    def OpenThreadToken(self, *args: Any) -> str:
        return "token"

    def GetTokenInformation(self, token: str, kind: int) -> Any:
        return (USER, 0) if kind == self.TokenUser else list(self.groups)

    def RevertToSelf(self) -> None:
        self.calls.append(("RevertToSelf",))

    def ConvertSidToStringSid(self, sid: str) -> str:
        return sid

    def LookupAccountName(self, system: Any, name: str) -> tuple[str, str, int]:
        if name != "wgdesk":
            raise Error(1332)
        return GROUP, "HOST", 4

    # win32api
    def CloseHandle(self, handle: str) -> None:
        self.calls.append(("CloseHandle", handle))

    def GetCurrentThread(self) -> str:
        return "thread"


class FakeClient(FakeWin32):
    """pywin32 on a client's side of a pipe: ``missing`` (no server has the name), ``denied`` (its
    descriptor refuses us), ``owner`` (the SID owning the server's pipe)."""

    def __init__(self, missing: bool = False, denied: bool = False, owner: str = pipes.SYSTEM_SID) -> None:
        super().__init__()
        self.missing = missing
        self.denied = denied
        self.owner = owner

    def WaitNamedPipe(self, path: str, milliseconds: int) -> None:
        self.calls.append(("WaitNamedPipe", path, milliseconds))
        if self.missing:
            raise Error(2)

    def CreateFile(
        self, path: str, access: int, share: int, sa: Any, how: int, flags: int, template: Any
    ) -> str:
        self.calls.append(("CreateFile", path, access, share, how, flags))
        if self.denied:
            raise Error(5)
        return "client"

    def GetSecurityInfo(self, handle: str, kind: int, what: int) -> Any:
        self.calls.append(("GetSecurityInfo", handle, kind, what))
        owner = self.owner
        return type("Descriptor", (), {"GetSecurityDescriptorOwner": lambda self: owner})()


class DllShim:
    """A fake DLL as ctypes hands it out: its functions take ``restype``/``argtypes``."""

    def __init__(self, fake: Any) -> None:
        self._fake = fake

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._fake, name)

        def function(*args: Any) -> Any:
            return method(*args)

        setattr(self, name, function)
        return function


class FakeServiceManager:
    """pywin32's ``servicemanager``, ``win32service``, ``win32serviceutil`` and ``pywintypes`` in one:
    ``StartServiceCtrlDispatcher`` plays the service manager and pywin32's ``service_main``
    (``PythonService.cpp``) — it starts the hosted service on a thread of its own (``SvcRun``; the
    framework's own ``SvcRun`` is pywin32's: running, ``SvcDoRun``, stop pending), calls
    ``scm(instance)`` (what the test does while the service runs: typically asks it to stop), waits for
    ``SvcRun`` to end, and reports ``SERVICE_STOPPED`` as pywin32 does: ``(0, 0)`` when ``SvcRun``
    returned, ``(ERROR_SERVICE_SPECIFIC_ERROR, 0x20000001)`` when it raised. ``console``: the
    dispatcher refuses, as when started from a console."""

    EVENTLOG_INFORMATION_TYPE, PYS_SERVICE_STARTED, PYS_SERVICE_STOPPED = 4, 0x40000064, 0x40000066
    SERVICE_STOPPED, SERVICE_RUNNING, SERVICE_STOP_PENDING = 1, 4, 3
    error = Error

    def __init__(self, scm: Any = None, console: bool = False) -> None:
        self.scm = scm
        self.console = console
        self.calls: list[tuple[Any, ...]] = []
        self.hosted: Any = None
        self.raised: BaseException | None = None
        manager = self

        class ServiceFramework:
            def __init__(self, args: Any) -> None:
                manager.calls.append(("ServiceFramework", tuple(args)))

            def ReportServiceStatus(
                self, status: int, waitHint: int = 5000, win32ExitCode: int = 0, svcExitCode: int = 0
            ) -> None:
                codes = (win32ExitCode, svcExitCode) if win32ExitCode or svcExitCode else ()
                manager.calls.append(("ReportServiceStatus", status, *codes))

            def SvcRun(self) -> None:
                self.ReportServiceStatus(manager.SERVICE_RUNNING)
                self.SvcDoRun()  # type: ignore[attr-defined]
                self.ReportServiceStatus(manager.SERVICE_STOP_PENDING)

        self.ServiceFramework = ServiceFramework

    def bundle(self) -> Any:
        from wgdesk.platforms.windows.service_host import ServiceModules

        return ServiceModules(self, self, self, self)

    def Initialize(self) -> None:
        self.calls.append(("Initialize",))

    def PrepareToHostSingle(self, cls: Any) -> None:
        self.calls.append(("PrepareToHostSingle", cls._svc_name_))
        self.hosted = cls

    def service_main(self, instance: Any) -> None:
        """``SvcRun``, then the final status pywin32's C framework reports."""
        try:
            instance.SvcRun()
        except Exception as exc:
            self.raised = exc
            self.calls.append(("SetServiceStatus", self.SERVICE_STOPPED, 1066, 0x20000001))
        else:
            self.calls.append(("SetServiceStatus", self.SERVICE_STOPPED, 0, 0))

    def StartServiceCtrlDispatcher(self) -> None:
        self.calls.append(("StartServiceCtrlDispatcher",))
        if self.console:
            raise Error(1063)
        instance = self.hosted([self.hosted._svc_name_])
        thread = threading.Thread(target=self.service_main, args=(instance,))
        thread.start()
        if self.scm is not None:
            self.scm(instance)
        thread.join(60)
        assert not thread.is_alive(), "the service did not stop"

    def LogMsg(self, kind: int, message: int, strings: tuple[str, str]) -> None:
        self.calls.append(("LogMsg", message, strings[0]))

    def LogErrorMsg(self, text: str) -> None:
        self.calls.append(("LogErrorMsg", text))


class FakeServiceControl:
    """pywin32's ``win32service`` (the service manager's client side), ``win32api``, ``win32event``
    and ``pywintypes`` in one, for `wgdesk.platforms.windows.service_stop`: the service's states
    are scripted (`states`: what each ``QueryServiceStatusEx`` returns, the last one repeated),
    every call is recorded with its arguments, `clock` advances by what `sleep` is given."""

    error = Error

    def __init__(
        self,
        states: list[int],
        pid: int = 4242,
        installed: bool = True,
        process_ends: bool = True,
        wait_hint: int = 30000,
    ) -> None:
        self.states = list(states)
        self.pid = pid
        self.installed = installed
        self.process_ends = process_ends
        self.wait_hint = wait_hint
        self.calls: list[tuple[Any, ...]] = []
        self.now = 100.0

    def modules(self) -> Any:
        from wgdesk.platforms.windows.service_stop import ControlModules

        return ControlModules(self, self, self, self, self.clock, self.sleep)

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.calls.append(("sleep", seconds))
        self.now += seconds

    def OpenSCManager(self, machine: Any, database: Any, access: int) -> str:
        self.calls.append(("OpenSCManager", machine, database, access))
        return "scm"

    def OpenService(self, manager: str, name: str, access: int) -> str:
        self.calls.append(("OpenService", manager, name, access))
        if not self.installed:
            raise Error(1060)
        return "svc"

    def QueryServiceStatusEx(self, handle: str) -> dict[str, int]:
        self.calls.append(("QueryServiceStatusEx", handle))
        state = self.states.pop(0) if len(self.states) > 1 else self.states[0]
        return {
            "ServiceType": 0x10,
            "CurrentState": state,
            "ControlsAccepted": 1,
            "Win32ExitCode": 0,
            "ServiceSpecificExitCode": 0,
            "CheckPoint": 1,
            "WaitHint": self.wait_hint if state != 1 else 0,
            "ProcessId": self.pid if state != 1 else 0,
            "ServiceFlags": 0,
        }

    def ControlService(self, handle: str, control: int) -> tuple[int, ...]:
        self.calls.append(("ControlService", handle, control))
        return (0x10, 3, 1, 0, 0, 0, 0)

    def OpenProcess(self, access: int, inherit: bool, pid: int) -> str:
        self.calls.append(("OpenProcess", access, inherit, pid))
        return "process"

    def WaitForSingleObject(self, handle: str, milliseconds: int) -> int:
        self.calls.append(("WaitForSingleObject", handle, milliseconds))
        return 0 if self.process_ends else 258

    def CloseHandle(self, handle: str) -> None:
        self.calls.append(("CloseHandle", handle))

    def CloseServiceHandle(self, handle: str) -> None:
        self.calls.append(("CloseServiceHandle", handle))
