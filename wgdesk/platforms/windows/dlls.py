"""Loading the Windows DLLs the backend calls through ctypes, and reading their errors.

System DLLs are loaded from System32 only (``LOAD_LIBRARY_SEARCH_SYSTEM32``), ``wintun.dll`` by its
full path beside our executable: a DLL planted in the working directory or on ``PATH`` is never
picked up by a LocalSystem service. ``use_last_error`` makes ctypes save ``GetLastError`` right after
each call, before Python's own calls can overwrite it. Off Windows (the tests) loading refuses with
`PlatformError`; the callers take a DLL object instead, which the tests give as a fake.
"""

from __future__ import annotations

import ctypes
from pathlib import Path
from typing import Any

from wgdesk.platforms.errors import PlatformError

LOAD_LIBRARY_SEARCH_SYSTEM32 = 0x00000800


def load(name: str | Path) -> Any:
    """``name`` (a System32 DLL such as ``iphlpapi``) or the DLL at the absolute path ``name``."""
    loader = getattr(ctypes, "WinDLL", None)
    if loader is None:
        raise PlatformError(f"{name}: Windows DLLs load only on Windows")
    if isinstance(name, Path):
        return loader(str(name), use_last_error=True)
    return loader(name, use_last_error=True, winmode=LOAD_LIBRARY_SEARCH_SYSTEM32)


def last_error() -> int:
    """The Win32 error of the thread's last ctypes call into a DLL loaded by `load`."""
    return int(getattr(ctypes, "get_last_error", lambda: 0)())


def describe(code: int) -> str:
    """``code`` as Windows words it (where it can), with the number."""
    format_error = getattr(ctypes, "FormatError", None)
    return f"{format_error(code)} (error {code})" if format_error else f"error {code}"
