"""A `wgdesk.platforms.windows.wfp_plan.Plan` put in place through ``fwpuclnt.dll``, in one transaction.

`FilterEngine` opens the filtering engine (a plain session: the plans are persistent, so what they add
stays when the handle closes or the helper dies; a dynamic session, whose objects go with its handle,
remains possible), and `FilterEngine.apply` replaces the previous plan with a new one between
``FwpmTransactionBegin0`` and ``FwpmTransactionCommit0``: the old filters are deleted and the new
ones added atomically, so there is no moment without a kill switch, and any failure aborts the
transaction (``FwpmTransactionAbort0``) and leaves the previous plan in force.

What an earlier helper left — a persistent plan whose filters are keyed by tunnel names this helper
does not know — is found by enumerating the filters (``FwpmFilterCreateEnumHandle0`` without a
template: all of them, inside the same transaction so the answer is current) and keeping those whose
``providerKey`` is the plan's provider (`FilterEngine.ours`). Boot-time filters are not counted on
to appear there (an enumeration includes them only when a template asks); lockdown's are deleted by
their fixed keys.

Every function gets its C signature (`SIGNATURES`) when the DLL is loaded: ctypes' default return
type is a signed ``int``, which would turn ``FWP_E_FILTER_NOT_FOUND`` (``0x80320003``) into a
negative number that no tolerated status matches, and its default argument conversion truncates a
64-bit handle.

The C structures are built here from the plan's plain values (`_Builder`), kept alive until the
transaction ends. The GUIDs of layers and condition fields are those of the SDK's ``fwpmu.h``
(mingw-w64 10 does not declare them; each was checked against several independent copies); the
enumeration values are checked against mingw-w64's ``fwptypes.h`` by ``tests/windows/test_structures``
(`HEADER_CONSTANTS`).
"""

from __future__ import annotations

import ctypes
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from ipaddress import IPv6Address, ip_network
from typing import Any

from wgdesk.platforms.errors import PlatformError
from wgdesk.platforms.windows import dlls
from wgdesk.platforms.windows.structures import (
    FWP_V4_ADDR_AND_MASK,
    FWP_V6_ADDR_AND_MASK,
    FWPM_FILTER0,
    FWPM_FILTER_CONDITION0,
    FWPM_PROVIDER0,
    FWPM_SESSION0,
    FWPM_SUBLAYER0,
    GUID,
    wide,
)
from wgdesk.platforms.windows.wfp_plan import SUBLAYER_WEIGHT, Condition, Filter, Plan
from wgdesk.platforms.windows.wintun import guid_struct

LAYER_KEYS = {
    "ALE_AUTH_CONNECT_V4": uuid.UUID("c38d57d1-05a7-4c33-904f-7fbceee60e82"),
    "ALE_AUTH_CONNECT_V6": uuid.UUID("4a72393b-319f-44bc-84c3-ba54dcb3b6b4"),
    "ALE_AUTH_RECV_ACCEPT_V4": uuid.UUID("e1cd9fe7-f4b5-4273-96c0-592e487b8650"),
    "ALE_AUTH_RECV_ACCEPT_V6": uuid.UUID("a3b42c97-9f04-4672-b87e-cee9c483257f"),
}
"""``FWPM_LAYER_*`` of fwpmu.h."""

CONDITION_KEYS = {
    "ALE_APP_ID": uuid.UUID("d78e1e87-8644-4ea5-9437-d809ecefc971"),
    "IP_LOCAL_INTERFACE": uuid.UUID("4cd62a49-59c3-4969-b7f3-bda5d32890a4"),
    "FLAGS": uuid.UUID("632ce23b-5167-435c-86d7-e903684aa80c"),
    "IP_PROTOCOL": uuid.UUID("3971ef2b-623e-4f9a-8cb1-6e79b806b9a7"),
    "IP_REMOTE_PORT": uuid.UUID("c35a604d-d22b-4e1a-91b4-68f674ee674b"),
    "IP_LOCAL_PORT": uuid.UUID("0c1ba1af-5765-453f-af22-a8f791ac775b"),
    "ICMP_TYPE": uuid.UUID("0c1ba1af-5765-453f-af22-a8f791ac775b"),  # fwpmu.h: #define as IP_LOCAL_PORT
    "IP_REMOTE_ADDRESS": uuid.UUID("b235ae9a-1d64-49b8-a44c-5ff3d9095045"),
}
"""``FWPM_CONDITION_*`` of fwpmu.h."""

FWP_UINT8 = 1
FWP_UINT16 = 2
FWP_UINT32 = 3
FWP_UINT64 = 4
FWP_BYTE_ARRAY16_TYPE = 11
FWP_BYTE_BLOB_TYPE = 12
FWP_V4_ADDR_MASK = 0x100
FWP_V6_ADDR_MASK = 0x101
FWP_MATCH_EQUAL = 0
FWP_MATCH_FLAGS_ALL_SET = 6
FWP_ACTION_BLOCK = 0x1001
FWP_ACTION_PERMIT = 0x1002
RPC_C_AUTHN_WINNT = 10
FWP_E_FILTER_NOT_FOUND = 0x80320003
FWP_E_PROVIDER_NOT_FOUND = 0x80320005
FWP_E_SUBLAYER_NOT_FOUND = 0x80320007
FWP_E_ALREADY_EXISTS = 0x80320009
ENUM_BATCH = 256
"""Filters asked for per ``FwpmFilterEnum0`` call."""

HEADER_CONSTANTS = {
    "FWP_UINT8": FWP_UINT8,
    "FWP_UINT16": FWP_UINT16,
    "FWP_UINT32": FWP_UINT32,
    "FWP_UINT64": FWP_UINT64,
    "FWP_BYTE_ARRAY16_TYPE": FWP_BYTE_ARRAY16_TYPE,
    "FWP_BYTE_BLOB_TYPE": FWP_BYTE_BLOB_TYPE,
    "FWP_V4_ADDR_MASK": FWP_V4_ADDR_MASK,
    "FWP_V6_ADDR_MASK": FWP_V6_ADDR_MASK,
    "FWP_MATCH_EQUAL": FWP_MATCH_EQUAL,
    "FWP_MATCH_FLAGS_ALL_SET": FWP_MATCH_FLAGS_ALL_SET,
    "FWP_ACTION_BLOCK": FWP_ACTION_BLOCK,
    "FWP_ACTION_PERMIT": FWP_ACTION_PERMIT,
    "FWP_CONDITION_FLAG_IS_LOOPBACK": 1,
    "RPC_C_AUTHN_WINNT": RPC_C_AUTHN_WINNT,
    "(unsigned long)FWP_E_FILTER_NOT_FOUND": FWP_E_FILTER_NOT_FOUND,
    "(unsigned long)FWP_E_PROVIDER_NOT_FOUND": FWP_E_PROVIDER_NOT_FOUND,
    "(unsigned long)FWP_E_SUBLAYER_NOT_FOUND": FWP_E_SUBLAYER_NOT_FOUND,
    "(unsigned long)FWP_E_ALREADY_EXISTS": FWP_E_ALREADY_EXISTS,
}
"""Values held against mingw-w64's headers (C expression → our value)."""

FWPM_SESSION_FLAG_DYNAMIC = 0x1
FWPM_PROVIDER_FLAG_PERSISTENT = 0x1
FWPM_SUBLAYER_FLAG_PERSISTENT = 0x1
FWPM_FILTER_FLAG_PERSISTENT = 0x1
FWPM_FILTER_FLAG_BOOTTIME = 0x2
"""Flags as documented (not in mingw-w64 10's headers)."""

ACTIONS = {"permit": FWP_ACTION_PERMIT, "block": FWP_ACTION_BLOCK}
MATCHES = {"equal": FWP_MATCH_EQUAL, "flags_all_set": FWP_MATCH_FLAGS_ALL_SET}
INLINE = {"uint8": (FWP_UINT8, "uint8"), "uint16": (FWP_UINT16, "uint16"), "uint32": (FWP_UINT32, "uint32")}

_P = ctypes.c_void_p
_U32 = ctypes.c_uint32
SIGNATURES: dict[str, tuple[Any, tuple[Any, ...]]] = {
    "FwpmEngineOpen0": (_U32, (_P, _U32, _P, _P, _P)),
    "FwpmEngineClose0": (_U32, (_P,)),
    "FwpmTransactionBegin0": (_U32, (_P, _U32)),
    "FwpmTransactionCommit0": (_U32, (_P,)),
    "FwpmTransactionAbort0": (_U32, (_P,)),
    "FwpmProviderAdd0": (_U32, (_P, _P, _P)),
    "FwpmProviderDeleteByKey0": (_U32, (_P, _P)),
    "FwpmSubLayerAdd0": (_U32, (_P, _P, _P)),
    "FwpmSubLayerDeleteByKey0": (_U32, (_P, _P)),
    "FwpmFilterAdd0": (_U32, (_P, _P, _P, _P)),
    "FwpmFilterDeleteByKey0": (_U32, (_P, _P)),
    "FwpmFilterGetByKey0": (_U32, (_P, _P, _P)),
    "FwpmFilterCreateEnumHandle0": (_U32, (_P, _P, _P)),
    "FwpmFilterEnum0": (_U32, (_P, _P, _U32, _P, _P)),
    "FwpmFilterDestroyEnumHandle0": (_U32, (_P, _P)),
    "FwpmGetAppIdFromFileName0": (_U32, (_P, _P)),
    "FwpmFreeMemory0": (None, (_P,)),
}
"""``fwpuclnt.dll``'s functions as fwpmu.h declares them (``DWORD`` status; handles and structures
by pointer)."""


def configure(dll: Any) -> Any:
    """Give ``dll``'s functions their C signatures (`SIGNATURES`)."""
    return dlls.declare(dll, SIGNATURES)


def _uuid(guid: GUID) -> uuid.UUID:
    return uuid.UUID(bytes_le=bytes(guid))


class FilterError(PlatformError):
    """A WFP call failed; the transaction was aborted (the previous plan stays)."""


class _Builder:
    """Builds the C structures of one transaction and keeps them (and the buffers their pointers
    point to) alive; `free` releases what ``fwpuclnt`` allocated (application IDs)."""

    def __init__(self, dll: Any) -> None:
        self.dll = dll
        self.keep: list[Any] = []
        self.app_ids: dict[str, int] = {}

    def _keep(self, value: Any) -> int:
        self.keep.append(value)
        return ctypes.addressof(value)

    def guid(self, value: str | uuid.UUID) -> GUID:
        return guid_struct(uuid.UUID(str(value)))

    def text(self, value: str) -> int:
        return self._keep(wide(value))

    def app_id(self, path: str) -> int:
        if path not in self.app_ids:
            blob = ctypes.c_void_p()
            status = self.dll.FwpmGetAppIdFromFileName0(self.text(path), ctypes.byref(blob))
            if status:
                raise FilterError(f"no application ID for {path} (error {status:#x})")
            self.app_ids[path] = blob.value or 0
        return self.app_ids[path]

    def condition(self, target: FWPM_FILTER_CONDITION0, condition: Condition) -> None:
        target.fieldKey = self.guid(CONDITION_KEYS[condition.field])
        target.matchType = MATCHES[condition.match]
        value = target.conditionValue
        kind, raw = condition.kind, condition.value
        if kind in INLINE:
            value.type, member = INLINE[kind]
            setattr(value, member, int(raw))
        elif kind == "v4_address":
            value.type, value.uint32 = FWP_UINT32, int(raw)
        elif kind == "uint64":
            value.type, value.pointer = FWP_UINT64, self._keep(ctypes.c_uint64(int(raw)))
        elif kind == "v6_address":
            array = (ctypes.c_uint8 * 16)(*IPv6Address(str(raw)).packed)
            value.type, value.pointer = FWP_BYTE_ARRAY16_TYPE, self._keep(array)
        elif kind == "v4_mask":
            network = ip_network(str(raw))
            mask = FWP_V4_ADDR_AND_MASK(int(network.network_address), int(network.netmask))
            value.type, value.pointer = FWP_V4_ADDR_MASK, self._keep(mask)
        elif kind == "v6_mask":
            network = ip_network(str(raw))
            mask6 = FWP_V6_ADDR_AND_MASK(
                (ctypes.c_uint8 * 16)(*network.network_address.packed), network.prefixlen
            )
            value.type, value.pointer = FWP_V6_ADDR_MASK, self._keep(mask6)
        elif kind == "app_id":
            value.type, value.pointer = FWP_BYTE_BLOB_TYPE, self.app_id(str(raw))
        else:
            raise ValueError(f"unknown condition kind {kind!r}")

    def filter(self, plan: Plan, f: Filter, provider: GUID) -> FWPM_FILTER0:
        row = FWPM_FILTER0()
        row.filterKey = self.guid(f.key)
        row.displayData.name = self.text(f"wgdesk: {f.name}")
        if f.boot_time:
            row.flags = FWPM_FILTER_FLAG_BOOTTIME
        elif plan.persistent:
            row.flags = FWPM_FILTER_FLAG_PERSISTENT
        row.providerKey = ctypes.addressof(provider)
        row.layerKey = self.guid(LAYER_KEYS[f.layer])
        row.subLayerKey = self.guid(plan.sublayer_key)
        row.weight.type, row.weight.uint8 = FWP_UINT8, f.weight
        if f.conditions:
            conditions = (FWPM_FILTER_CONDITION0 * len(f.conditions))()
            for target, condition in zip(conditions, f.conditions, strict=True):
                self.condition(target, condition)
            row.numFilterConditions = len(f.conditions)
            row.filterCondition = self._keep(conditions)
        row.action.type = ACTIONS[f.action]
        self.keep.append(row)
        return row

    def free(self) -> None:
        for blob in self.app_ids.values():
            self.dll.FwpmFreeMemory0(ctypes.byref(ctypes.c_void_p(blob)))
        self.app_ids.clear()
        self.keep.clear()


class FilterEngine:
    """One handle to the filtering engine (``fwpuclnt`` is the DLL or a fake with its functions)."""

    def __init__(self, fwpuclnt: Any, dynamic: bool) -> None:
        self.dll = fwpuclnt
        self.dynamic = dynamic
        session = FWPM_SESSION0()
        name = wide("wgdesk kill switch")
        session.displayData.name = ctypes.addressof(name)
        session.flags = FWPM_SESSION_FLAG_DYNAMIC if dynamic else 0
        handle = ctypes.c_void_p()
        status = self.dll.FwpmEngineOpen0(
            None, RPC_C_AUTHN_WINNT, None, ctypes.byref(session), ctypes.byref(handle)
        )
        if status:
            raise FilterError(
                f"cannot open the Windows Filtering Platform (error {status:#x}; is BFE running?)"
            )
        self.handle = handle.value

    @classmethod
    def load(cls, dynamic: bool) -> FilterEngine:
        return cls(configure(dlls.load("fwpuclnt")), dynamic)

    def _call(self, what: str, status: int, tolerated: frozenset[int] = frozenset()) -> None:
        if status and status not in tolerated:
            raise FilterError(f"{what} failed (error {status:#x})")

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Begin; commit on success; abort (and re-raise) on any failure."""
        self._call("FwpmTransactionBegin0", self.dll.FwpmTransactionBegin0(self.handle, 0))
        try:
            yield
            self._call("FwpmTransactionCommit0", self.dll.FwpmTransactionCommit0(self.handle))
        except BaseException:
            self.dll.FwpmTransactionAbort0(self.handle)
            raise

    def ours(self, provider_key: str) -> list[str]:
        """The keys of every filter in place whose provider is ``provider_key`` (call inside a
        transaction for a current answer; boot-time filters may be missing, see the module)."""
        wanted = uuid.UUID(provider_key)
        enum = ctypes.c_void_p()
        status = self.dll.FwpmFilterCreateEnumHandle0(self.handle, None, ctypes.byref(enum))
        self._call("FwpmFilterCreateEnumHandle0", status)
        keys: list[str] = []
        try:
            while True:
                entries, returned = ctypes.c_void_p(), ctypes.c_uint32()
                status = self.dll.FwpmFilterEnum0(
                    self.handle, enum.value, ENUM_BATCH, ctypes.byref(entries), ctypes.byref(returned)
                )
                self._call("FwpmFilterEnum0", status)
                if entries.value:
                    try:
                        for address in (ctypes.c_void_p * returned.value).from_address(entries.value):
                            if not address:
                                continue
                            row = FWPM_FILTER0.from_address(address)
                            provider = row.providerKey
                            if provider and _uuid(GUID.from_address(provider)) == wanted:
                                keys.append(str(_uuid(row.filterKey)))
                    finally:
                        self.dll.FwpmFreeMemory0(ctypes.byref(entries))
                if returned.value < ENUM_BATCH:
                    return keys
        finally:
            self.dll.FwpmFilterDestroyEnumHandle0(self.handle, enum.value)

    def _delete_keys(self, keys: list[tuple[str, str]], builder: _Builder) -> None:
        for key, name in keys:
            status = self.dll.FwpmFilterDeleteByKey0(self.handle, ctypes.byref(builder.guid(key)))
            self._call(f"deleting filter {name}", status, frozenset({FWP_E_FILTER_NOT_FOUND}))

    def _left(self, plan: Plan) -> list[tuple[str, str]]:
        """The plan's own filters and whatever else of its provider is in place (left by an earlier
        helper, with tunnels this one does not know), the plan's first."""
        known = [(f.key, f.name) for f in plan.filters]
        keys = {key for key, _ in known}
        left = [key for key in self.ours(plan.provider_key) if key not in keys]
        return known + [(key, f"left by an earlier helper {key}") for key in left]

    def _delete(self, plan: Plan, builder: _Builder, objects: bool) -> None:
        known = [(f.key, f.name) for f in plan.filters]
        self._delete_keys(self._left(plan) if objects and plan.persistent else known, builder)
        if objects:
            status = self.dll.FwpmSubLayerDeleteByKey0(
                self.handle, ctypes.byref(builder.guid(plan.sublayer_key))
            )
            self._call("deleting our sublayer", status, frozenset({FWP_E_SUBLAYER_NOT_FOUND}))
            status = self.dll.FwpmProviderDeleteByKey0(
                self.handle, ctypes.byref(builder.guid(plan.provider_key))
            )
            self._call("deleting our provider", status, frozenset({FWP_E_PROVIDER_NOT_FOUND}))

    def apply(self, plan: Plan, previous: Plan | None = None) -> None:
        """Replace ``previous`` (the plan this helper put in place, if any) with ``plan`` atomically.
        Without a previous plan, a persistent plan replaces whatever of its provider is in place: an
        earlier helper's (lockdown on at boot, a kill switch left by a crash — its filters name
        tunnels this helper may not know), and adding a filter whose key exists would fail."""
        builder = _Builder(self.dll)
        try:
            with self.transaction():
                if previous is not None:
                    self._delete(previous, builder, objects=False)
                elif plan.persistent:  # whatever an earlier helper left: replaced as a whole
                    self._delete_keys(self._left(plan), builder)
                provider_key = builder.guid(plan.provider_key)
                provider = FWPM_PROVIDER0()
                provider.providerKey = provider_key
                provider.displayData.name = builder.text("wgdesk")
                provider.flags = FWPM_PROVIDER_FLAG_PERSISTENT if plan.persistent else 0
                status = self.dll.FwpmProviderAdd0(self.handle, ctypes.byref(provider), None)
                self._call("adding our provider", status, frozenset({FWP_E_ALREADY_EXISTS}))
                sublayer = FWPM_SUBLAYER0()
                sublayer.subLayerKey = builder.guid(plan.sublayer_key)
                sublayer.displayData.name = builder.text("wgdesk kill switch")
                sublayer.flags = FWPM_SUBLAYER_FLAG_PERSISTENT if plan.persistent else 0
                sublayer.providerKey = ctypes.addressof(provider_key)
                sublayer.weight = SUBLAYER_WEIGHT
                status = self.dll.FwpmSubLayerAdd0(self.handle, ctypes.byref(sublayer), None)
                self._call("adding our sublayer", status, frozenset({FWP_E_ALREADY_EXISTS}))
                for f in plan.filters:
                    row = builder.filter(plan, f, provider_key)
                    identifier = ctypes.c_uint64()
                    status = self.dll.FwpmFilterAdd0(
                        self.handle, ctypes.byref(row), None, ctypes.byref(identifier)
                    )
                    self._call(f"adding filter {f.name!r} ({f.layer})", status)
        finally:
            builder.free()

    def remove(self, plan: Plan) -> None:
        """Remove every object of ``plan``, and of a persistent plan every other filter of its provider
        (those already gone are fine): kill switch or lockdown off, uninstall."""
        builder = _Builder(self.dll)
        with self.transaction():
            self._delete(plan, builder, objects=True)

    def has_filter(self, key: str) -> bool:
        """Whether our filter ``key`` is in place (``FwpmFilterGetByKey0``)."""
        found = ctypes.c_void_p()
        status = self.dll.FwpmFilterGetByKey0(
            self.handle, ctypes.byref(guid_struct(uuid.UUID(key))), ctypes.byref(found)
        )
        if status == FWP_E_FILTER_NOT_FOUND:
            return False
        self._call("FwpmFilterGetByKey0", status)
        self.dll.FwpmFreeMemory0(ctypes.byref(found))
        return True

    def close(self) -> None:
        """Close the handle (a dynamic session's objects go with it)."""
        if self.handle:
            self.dll.FwpmEngineClose0(self.handle)
            self.handle = None
