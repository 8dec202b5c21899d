"""The C structures of the Windows APIs wgdesk calls through ctypes (IP Helper, WFP, Wintun).

Every field has a fixed width (``c_uint32`` where the SDK says ``ULONG``/``DWORD``/an enum,
``c_uint8`` for ``BOOLEAN``, ``c_void_p`` for any pointer): ``ctypes.wintypes.LONG``/``ULONG`` are C
``long``, 8 bytes on Linux, so a structure built from them would have one layout where the tests run
and another where the code runs. With fixed widths the layout is the same on Linux x86-64 and Windows
x64, which is what lets ``tests/windows/test_structures.py`` hold these definitions against the SDK
headers of mingw-w64: it generates a C file of ``_Static_assert(sizeof …)``/``offsetof`` lines from
`LAYOUTS` and compiles it for ``x86_64-w64-mingw32``. Strings the API takes (``PWSTR``) are pointers
to UTF-16 buffers we make ourselves (`wide`), because ``c_wchar`` is 4 bytes on Linux.

Names are the SDK's, so a reader can hold them against Microsoft's documentation.
"""

from __future__ import annotations

import ctypes
from ctypes import c_uint8, c_uint16, c_uint32, c_uint64, c_void_p

AF_UNSPEC = 0
AF_INET = 2
AF_INET6 = 23
"""Windows' value (10 on Linux): what ``ADDRESS_FAMILY`` fields hold."""


def wide(text: str) -> ctypes.Array[ctypes.c_char]:
    """A NUL-terminated UTF-16LE buffer for a ``PWSTR`` field (keep it alive while it is used)."""
    return ctypes.create_string_buffer(text.encode("utf-16-le") + b"\0\0")


class GUID(ctypes.Structure):
    _fields_ = (("Data1", c_uint32), ("Data2", c_uint16), ("Data3", c_uint16), ("Data4", c_uint8 * 8))


class NET_LUID(ctypes.Structure):
    """``NET_LUID_LH``: a union of ``ULONG64 Value`` and bit fields; only the value is used."""

    _fields_ = (("Value", c_uint64),)


class IN_ADDR(ctypes.Structure):
    _fields_ = (("s_addr", c_uint8 * 4),)


class IN6_ADDR(ctypes.Structure):
    _fields_ = (("Byte", c_uint8 * 16),)


class SOCKADDR_IN(ctypes.Structure):
    _fields_ = (
        ("sin_family", c_uint16),
        ("sin_port", c_uint16),
        ("sin_addr", IN_ADDR),
        ("sin_zero", c_uint8 * 8),
    )


class SOCKADDR_IN6(ctypes.Structure):
    _fields_ = (
        ("sin6_family", c_uint16),
        ("sin6_port", c_uint16),
        ("sin6_flowinfo", c_uint32),
        ("sin6_addr", IN6_ADDR),
        ("sin6_scope_id", c_uint32),
    )


class SOCKADDR_INET(ctypes.Union):
    _fields_ = (("Ipv4", SOCKADDR_IN), ("Ipv6", SOCKADDR_IN6), ("si_family", c_uint16))


class IP_ADDRESS_PREFIX(ctypes.Structure):
    _fields_ = (("Prefix", SOCKADDR_INET), ("PrefixLength", c_uint8))


class MIB_UNICASTIPADDRESS_ROW(ctypes.Structure):
    _fields_ = (
        ("Address", SOCKADDR_INET),
        ("InterfaceLuid", NET_LUID),
        ("InterfaceIndex", c_uint32),
        ("PrefixOrigin", c_uint32),
        ("SuffixOrigin", c_uint32),
        ("ValidLifetime", c_uint32),
        ("PreferredLifetime", c_uint32),
        ("OnLinkPrefixLength", c_uint8),
        ("SkipAsSource", c_uint8),
        ("DadState", c_uint32),
        ("ScopeId", c_uint32),
        ("CreationTimeStamp", c_uint64),
    )


class MIB_IPFORWARD_ROW2(ctypes.Structure):
    _fields_ = (
        ("InterfaceLuid", NET_LUID),
        ("InterfaceIndex", c_uint32),
        ("DestinationPrefix", IP_ADDRESS_PREFIX),
        ("NextHop", SOCKADDR_INET),
        ("SitePrefixLength", c_uint8),
        ("ValidLifetime", c_uint32),
        ("PreferredLifetime", c_uint32),
        ("Metric", c_uint32),
        ("Protocol", c_uint32),
        ("Loopback", c_uint8),
        ("AutoconfigureAddress", c_uint8),
        ("Publish", c_uint8),
        ("Immortal", c_uint8),
        ("Age", c_uint32),
        ("Origin", c_uint32),
    )


class MIB_IPFORWARD_TABLE2(ctypes.Structure):
    """The header of ``GetIpForwardTable2``'s answer: ``NumEntries`` rows follow from ``Table``."""

    _fields_ = (("NumEntries", c_uint32), ("Table", MIB_IPFORWARD_ROW2 * 1))


class MIB_IPINTERFACE_ROW(ctypes.Structure):
    _fields_ = (
        ("Family", c_uint16),
        ("InterfaceLuid", NET_LUID),
        ("InterfaceIndex", c_uint32),
        ("MaxReassemblySize", c_uint32),
        ("InterfaceIdentifier", c_uint64),
        ("MinRouterAdvertisementInterval", c_uint32),
        ("MaxRouterAdvertisementInterval", c_uint32),
        ("AdvertisingEnabled", c_uint8),
        ("ForwardingEnabled", c_uint8),
        ("WeakHostSend", c_uint8),
        ("WeakHostReceive", c_uint8),
        ("UseAutomaticMetric", c_uint8),
        ("UseNeighborUnreachabilityDetection", c_uint8),
        ("ManagedAddressConfigurationSupported", c_uint8),
        ("OtherStatefulConfigurationSupported", c_uint8),
        ("AdvertiseDefaultRoute", c_uint8),
        ("RouterDiscoveryBehavior", c_uint32),
        ("DadTransmits", c_uint32),
        ("BaseReachableTime", c_uint32),
        ("RetransmitTime", c_uint32),
        ("PathMtuDiscoveryTimeout", c_uint32),
        ("LinkLocalAddressBehavior", c_uint32),
        ("LinkLocalAddressTimeout", c_uint32),
        ("ZoneIndices", c_uint32 * 16),
        ("SitePrefixLength", c_uint32),
        ("Metric", c_uint32),
        ("NlMtu", c_uint32),
        ("Connected", c_uint8),
        ("SupportsWakeUpPatterns", c_uint8),
        ("SupportsNeighborDiscovery", c_uint8),
        ("SupportsRouterDiscovery", c_uint8),
        ("ReachableTime", c_uint32),
        ("TransmitOffload", c_uint8),
        ("ReceiveOffload", c_uint8),
        ("DisableDefaultRoutes", c_uint8),
    )


class DNS_INTERFACE_SETTINGS(ctypes.Structure):
    """``SetInterfaceDnsSettings``' argument (Windows 10 2004 and later; not in mingw-w64 10's
    headers, so its layout is checked against Microsoft's documented declaration only)."""

    _fields_ = (
        ("Version", c_uint32),
        ("Flags", c_uint64),
        ("Domain", c_void_p),
        ("NameServer", c_void_p),
        ("SearchList", c_void_p),
        ("RegistrationEnabled", c_uint32),
        ("RegisterAdapterName", c_uint32),
        ("EnableLLMNR", c_uint32),
        ("QueryAdapterName", c_uint32),
        ("ProfileNameServer", c_void_p),
    )


# --- Windows Filtering Platform (fwptypes.h, fwpmtypes.h) ---------------------------------------------


class FWP_BYTE_BLOB(ctypes.Structure):
    _fields_ = (("size", c_uint32), ("data", c_void_p))


class FWP_V4_ADDR_AND_MASK(ctypes.Structure):
    _fields_ = (("addr", c_uint32), ("mask", c_uint32))


class FWP_V6_ADDR_AND_MASK(ctypes.Structure):
    _fields_ = (("addr", c_uint8 * 16), ("prefixLength", c_uint8))


class _FwpUnion(ctypes.Union):
    """The value union of ``FWP_VALUE0``/``FWP_CONDITION_VALUE0``: scalars up to 32 bits inline,
    everything larger (a UINT64, an address and mask, a blob, a SID) through ``pointer``."""

    _fields_ = (("uint8", c_uint8), ("uint16", c_uint16), ("uint32", c_uint32), ("pointer", c_void_p))


class FWP_VALUE0(ctypes.Structure):
    _anonymous_ = ("value",)
    _fields_ = (("type", c_uint32), ("value", _FwpUnion))


class FWP_CONDITION_VALUE0(ctypes.Structure):
    _anonymous_ = ("value",)
    _fields_ = (("type", c_uint32), ("value", _FwpUnion))


class FWP_RANGE0(ctypes.Structure):
    _fields_ = (("valueLow", FWP_VALUE0), ("valueHigh", FWP_VALUE0))


class FWPM_DISPLAY_DATA0(ctypes.Structure):
    _fields_ = (("name", c_void_p), ("description", c_void_p))


class FWPM_SESSION0(ctypes.Structure):
    _fields_ = (
        ("sessionKey", GUID),
        ("displayData", FWPM_DISPLAY_DATA0),
        ("flags", c_uint32),
        ("txnWaitTimeoutInMSec", c_uint32),
        ("processId", c_uint32),
        ("sid", c_void_p),
        ("username", c_void_p),
        ("kernelMode", ctypes.c_int32),
    )


class FWPM_PROVIDER0(ctypes.Structure):
    _fields_ = (
        ("providerKey", GUID),
        ("displayData", FWPM_DISPLAY_DATA0),
        ("flags", c_uint32),
        ("providerData", FWP_BYTE_BLOB),
        ("serviceName", c_void_p),
    )


class FWPM_SUBLAYER0(ctypes.Structure):
    _fields_ = (
        ("subLayerKey", GUID),
        ("displayData", FWPM_DISPLAY_DATA0),
        ("flags", c_uint16),
        ("providerKey", c_void_p),
        ("providerData", FWP_BYTE_BLOB),
        ("weight", c_uint16),
    )


class FWPM_FILTER_CONDITION0(ctypes.Structure):
    _fields_ = (("fieldKey", GUID), ("matchType", c_uint32), ("conditionValue", FWP_CONDITION_VALUE0))


class FWPM_ACTION0(ctypes.Structure):
    _fields_ = (("type", c_uint32), ("filterType", GUID))


class _FilterContext(ctypes.Union):
    _fields_ = (("rawContext", c_uint64), ("providerContextKey", GUID))


class FWPM_FILTER0(ctypes.Structure):
    _anonymous_ = ("context",)
    _fields_ = (
        ("filterKey", GUID),
        ("displayData", FWPM_DISPLAY_DATA0),
        ("flags", c_uint32),
        ("providerKey", c_void_p),
        ("providerData", FWP_BYTE_BLOB),
        ("layerKey", GUID),
        ("subLayerKey", GUID),
        ("weight", FWP_VALUE0),
        ("numFilterConditions", c_uint32),
        ("filterCondition", c_void_p),
        ("action", FWPM_ACTION0),
        ("context", _FilterContext),
        ("reserved", c_void_p),
        ("filterId", c_uint64),
        ("effectiveWeight", FWP_VALUE0),
    )


LAYOUTS: tuple[tuple[str, type[ctypes.Structure] | type[ctypes.Union]], ...] = (
    ("GUID", GUID),
    ("NET_LUID", NET_LUID),
    ("SOCKADDR_IN", SOCKADDR_IN),
    ("SOCKADDR_IN6", SOCKADDR_IN6),
    ("SOCKADDR_INET", SOCKADDR_INET),
    ("IP_ADDRESS_PREFIX", IP_ADDRESS_PREFIX),
    ("MIB_UNICASTIPADDRESS_ROW", MIB_UNICASTIPADDRESS_ROW),
    ("MIB_IPFORWARD_ROW2", MIB_IPFORWARD_ROW2),
    ("MIB_IPFORWARD_TABLE2", MIB_IPFORWARD_TABLE2),
    ("MIB_IPINTERFACE_ROW", MIB_IPINTERFACE_ROW),
    ("FWP_BYTE_BLOB", FWP_BYTE_BLOB),
    ("FWP_V4_ADDR_AND_MASK", FWP_V4_ADDR_AND_MASK),
    ("FWP_V6_ADDR_AND_MASK", FWP_V6_ADDR_AND_MASK),
    ("FWP_VALUE0", FWP_VALUE0),
    ("FWP_CONDITION_VALUE0", FWP_CONDITION_VALUE0),
    ("FWP_RANGE0", FWP_RANGE0),
    ("FWPM_DISPLAY_DATA0", FWPM_DISPLAY_DATA0),
    ("FWPM_SESSION0", FWPM_SESSION0),
    ("FWPM_PROVIDER0", FWPM_PROVIDER0),
    ("FWPM_SUBLAYER0", FWPM_SUBLAYER0),
    ("FWPM_FILTER_CONDITION0", FWPM_FILTER_CONDITION0),
    ("FWPM_ACTION0", FWPM_ACTION0),
    ("FWPM_FILTER0", FWPM_FILTER0),
)
"""The structures whose size and field offsets are held against the SDK headers (by their C names).
`DNS_INTERFACE_SETTINGS` is not among them: mingw-w64 10 does not declare it."""

NOT_IN_HEADERS = ("DNS_INTERFACE_SETTINGS",)
