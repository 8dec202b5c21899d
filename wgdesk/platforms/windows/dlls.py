"""Loading the Windows DLLs the backend calls through ctypes, and reading their errors.

System DLLs are loaded from System32 only (``LOAD_LIBRARY_SEARCH_SYSTEM32``), ``wintun.dll`` by its
full path beside our executable: a DLL planted in the working directory or on ``PATH`` is never
picked up by a LocalSystem service. ``use_last_error`` makes ctypes save ``GetLastError`` right after
each call, before Python's own calls can overwrite it. Off Windows (the tests) loading refuses with
`PlatformError`; the callers take a DLL object instead, which the tests give as a fake.

Every function gets its C signature when its DLL is loaded (`SIGNATURES` for the system DLLs; Wintun's
and WFP's are in their modules, applied by `declare` too): without one, ctypes passes a Python integer
as a C ``int`` — a 64-bit ``HANDLE`` or LUID is cut to 32 bits or refused — and reads every result as
a signed ``int``. Only fixed-width types are used (``c_long`` is 8 bytes on Linux, 4 on Windows).
"""

from __future__ import annotations

import ctypes
from collections.abc import Mapping
from ctypes import c_int32, c_uint8, c_uint16, c_uint32, c_void_p, c_wchar_p
from pathlib import Path
from typing import Any

from wgdesk.platforms.errors import PlatformError
from wgdesk.platforms.windows.structures import GUID

LOAD_LIBRARY_SEARCH_SYSTEM32 = 0x00000800

Signature = tuple[Any, tuple[Any, ...]]
"""(restype, argtypes) of one C function."""
_HANDLE = _P = c_void_p  # HANDLE and every pointer (ctypes passes byref(), arrays and callbacks as it)
_BOOL = c_int32
_DWORD = c_uint32  # also NETIO_STATUS / WIN32_ERROR, which are unsigned
_HRESULT = c_int32
SIGNATURES: dict[str, dict[str, Signature]] = {
    "iphlpapi": {  # netioapi.h
        "InitializeUnicastIpAddressEntry": (None, (_P,)),
        "InitializeIpForwardEntry": (None, (_P,)),
        "InitializeIpInterfaceEntry": (None, (_P,)),
        "CreateUnicastIpAddressEntry": (_DWORD, (_P,)),
        "DeleteUnicastIpAddressEntry": (_DWORD, (_P,)),
        "CreateIpForwardEntry2": (_DWORD, (_P,)),
        "DeleteIpForwardEntry2": (_DWORD, (_P,)),
        "GetIpInterfaceEntry": (_DWORD, (_P,)),
        "SetIpInterfaceEntry": (_DWORD, (_P,)),
        "GetIpForwardTable2": (_DWORD, (c_uint16, _P)),  # ADDRESS_FAMILY, PMIB_IPFORWARD_TABLE2*
        "FreeMibTable": (None, (_P,)),
        "NotifyRouteChange2": (_DWORD, (c_uint16, _P, _P, c_uint8, _P)),  # ..., BOOLEAN, HANDLE*
        "CancelMibChangeNotify2": (_DWORD, (_HANDLE,)),
        "ConvertInterfaceAliasToLuid": (_DWORD, (c_wchar_p, _P)),
        "ConvertInterfaceLuidToGuid": (_DWORD, (_P, _P)),
        "ConvertInterfaceLuidToIndex": (_DWORD, (_P, _P)),
        "SetInterfaceDnsSettings": (_DWORD, (GUID, _P)),  # the GUID by value; Windows 10 2004 and later
    },
    "kernel32": {
        "CreateEventW": (_HANDLE, (_P, _BOOL, _BOOL, c_wchar_p)),
        "SetEvent": (_BOOL, (_HANDLE,)),
        "WaitForMultipleObjects": (_DWORD, (_DWORD, _P, _BOOL, _DWORD)),
        "CloseHandle": (_BOOL, (_HANDLE,)),
        "CreateMutexW": (_HANDLE, (_P, _BOOL, c_wchar_p)),
    },
    "shell32": {
        "IsUserAnAdmin": (_BOOL, ()),
        "SHGetKnownFolderPath": (
            _HRESULT,
            (_P, _DWORD, _HANDLE, _P),
        ),  # REFKNOWNFOLDERID, flags, token, PWSTR*
    },
    "ole32": {
        "CoTaskMemFree": (None, (_P,)),
    },
}
"""The C signature of every function wgdesk calls in each system DLL (a test holds the code to it)."""


def declare(dll: Any, signatures: Mapping[str, Signature]) -> Any:
    """Give ``dll``'s functions their ``restype`` and ``argtypes``; one the DLL lacks is skipped (a
    caller that can do without it asks with ``hasattr``, as `dns` does for ``SetInterfaceDnsSettings``)."""
    for name, (restype, argtypes) in signatures.items():
        function = getattr(dll, name, None)
        if function is not None:
            function.restype = restype
            function.argtypes = argtypes
    return dll


def load(name: str | Path) -> Any:
    """``name`` (a System32 DLL such as ``iphlpapi``) or the DLL at the absolute path ``name``."""
    loader = getattr(ctypes, "WinDLL", None)
    if loader is None:
        raise PlatformError(f"{name}: Windows DLLs load only on Windows")
    if isinstance(name, Path):
        return loader(str(name), use_last_error=True)
    return declare(
        loader(name, use_last_error=True, winmode=LOAD_LIBRARY_SEARCH_SYSTEM32), SIGNATURES.get(name, {})
    )


def last_error() -> int:
    """The Win32 error of the thread's last ctypes call into a DLL loaded by `load`."""
    return int(getattr(ctypes, "get_last_error", lambda: 0)())


def describe(code: int) -> str:
    """``code`` as Windows words it (where it can), with the number."""
    format_error = getattr(ctypes, "FormatError", None)
    return f"{format_error(code)} (error {code})" if format_error else f"error {code}"
