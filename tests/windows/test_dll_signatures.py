"""Every DLL function the Windows backend calls through ctypes has a declared C signature
(`wgdesk.platforms.windows.dlls.SIGNATURES`, `wintun.SIGNATURES`, `wfp.SIGNATURES`), and loading a
DLL applies it.

Without ``argtypes`` ctypes passes a Python integer as a C ``int``: a 64-bit ``HANDLE`` (an event, a
route-change notification) is refused or cut to 32 bits, and a ``DWORD`` status above 0x7fffffff
comes back negative. The fakes the other tests use take any Python value, so only this test sees a
missing declaration: it reads the backend's source for every call on a DLL object and looks each
function up; the mingw-w64 import libraries say which DLL exports it."""

from __future__ import annotations

import ast
import ctypes
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.windows.fake_windows import FakeIpHlpApi, FakeKernel32, FakeOle32, FakeShell32
from wgdesk.platforms.windows import dlls, wfp, wintun
from wgdesk.platforms.windows.structures import GUID

ROOT = Path(__file__).resolve().parents[2]
BACKEND = ROOT / "wgdesk/platforms/windows"
DLL_OBJECTS = {"dll", "iphlpapi", "kernel32", "shell32", "ole32", "fwpuclnt"}
"""The names the backend holds a loaded DLL (or its fake) under: ``self.dll``, ``ip.dll``, ``shell32``…"""
DECLARED = {
    **{name: dll for dll, table in dlls.SIGNATURES.items() for name in table},
    **dict.fromkeys(wintun.SIGNATURES, "wintun"),
    **dict.fromkeys(wfp.SIGNATURES, "fwpuclnt"),
}
FIXED_WIDTH = {None, ctypes.c_void_p, ctypes.c_wchar_p, ctypes.c_uint8, ctypes.c_uint16, ctypes.c_uint32}
FIXED_WIDTH |= {ctypes.c_int32, ctypes.c_uint64, GUID}
NM = "x86_64-w64-mingw32-nm"
LIBRARIES = Path("/usr/x86_64-w64-mingw32/lib")


def dll_calls() -> dict[str, set[str]]:
    """Function name → the backend files calling it on a DLL object."""
    found: dict[str, set[str]] = {}
    for path in sorted(BACKEND.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            holder = node.func.value
            name = holder.attr if isinstance(holder, ast.Attribute) else getattr(holder, "id", "")
            if name in DLL_OBJECTS:
                found.setdefault(node.func.attr, set()).add(path.name)
    return found


def test_every_function_called_on_a_dll_is_declared() -> None:
    calls = dll_calls()
    # the scan sees the calls of every DLL (it is not vacuous)
    assert {"CancelMibChangeNotify2", "SetEvent", "SHGetKnownFolderPath", "CoTaskMemFree"} <= set(calls)
    assert {"WintunReceivePacket", "FwpmFilterAdd0", "SetInterfaceDnsSettings", "CreateMutexW"} <= set(calls)
    undeclared = {name: sorted(files) for name, files in calls.items() if name not in DECLARED}
    assert undeclared == {}


def test_the_fakes_functions_are_declared_for_the_dll_they_stand_for() -> None:
    """A function declared for the wrong DLL would not be found there (nor declared) on Windows."""
    for fake, dll in ((FakeIpHlpApi, "iphlpapi"), (FakeKernel32, "kernel32"), (FakeShell32, "shell32")):
        functions = {n for n in vars(fake) if n[:1].isupper()}
        assert functions <= set(dlls.SIGNATURES[dll]), (dll, functions - set(dlls.SIGNATURES[dll]))
    assert {n for n in vars(FakeOle32) if n[:1].isupper()} <= set(dlls.SIGNATURES["ole32"])


@pytest.mark.skipif(shutil.which(NM) is None, reason=f"{NM} missing: run scripts/install-test-deps")
def test_each_system_dll_exports_the_functions_declared_for_it() -> None:
    """From the import libraries of mingw-w64 (``libiphlpapi.a``…): the names the DLLs export."""
    for dll, table in {**dlls.SIGNATURES, "fwpuclnt": wfp.SIGNATURES}.items():
        listing = subprocess.run(
            [NM, str(LIBRARIES / f"lib{dll}.a")], capture_output=True, text=True, check=True
        )
        exported = {line.split()[-1] for line in listing.stdout.splitlines() if " T " in line}
        assert set(table) - exported == set(), dll


def test_only_fixed_width_types_are_declared() -> None:
    """``c_long``/``c_int``/``c_ulong`` differ between Linux and Windows (and from the SDK's meaning)."""
    tables = [*dlls.SIGNATURES.values(), wintun.SIGNATURES, wfp.SIGNATURES]
    for table in tables:
        for name, (restype, argtypes) in table.items():
            pointers = {t for t in argtypes if isinstance(t, type) and issubclass(t, ctypes._Pointer)}
            assert {restype, *argtypes} - pointers <= FIXED_WIDTH, name


def test_a_64_bit_handle_passes_whole_through_every_handle_parameter() -> None:
    """Through a C function pointer of the declared prototype: what ctypes does on Windows."""
    handle = 0x00007FF6_1234_5678
    seen: list[Any] = []
    for name in ("SetEvent", "CloseHandle"):
        restype, argtypes = dlls.SIGNATURES["kernel32"][name]
        prototype = ctypes.CFUNCTYPE(restype, *argtypes)
        prototype(lambda value: seen.append(value) or 1)(handle)
    restype, argtypes = dlls.SIGNATURES["iphlpapi"]["CancelMibChangeNotify2"]
    ctypes.CFUNCTYPE(restype, *argtypes)(lambda value: seen.append(value) or 0)(ctypes.c_void_p(handle))
    assert seen == [handle, handle, handle]
    as_int: list[int] = []
    ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int)(lambda value: as_int.append(value) or 0)(handle)
    assert as_int == [0x12345678]  # an undeclared function's C int: another handle (Windows: ArgumentError)


class FakeFunction:
    restype: Any = "unset"
    argtypes: Any = "unset"


class FakeLoadedDll:
    def __init__(self, missing: str = "") -> None:
        self.missing = missing

    def __getattr__(self, name: str) -> FakeFunction:
        if name == self.missing or name.startswith("_"):
            raise AttributeError(name)
        function = FakeFunction()
        setattr(self, name, function)
        return function


def test_loading_a_system_dll_declares_its_functions_and_skips_one_it_lacks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    loaded: list[tuple[str, dict[str, Any]]] = []

    def loader(name: str, **options: Any) -> FakeLoadedDll:
        loaded.append((name, options))
        return FakeLoadedDll(missing="SetInterfaceDnsSettings")  # Windows before 10 2004

    monkeypatch.setattr(ctypes, "WinDLL", loader, raising=False)
    iphlpapi = dlls.load("iphlpapi")
    assert loaded == [("iphlpapi", {"use_last_error": True, "winmode": dlls.LOAD_LIBRARY_SEARCH_SYSTEM32})]
    for name, (restype, argtypes) in dlls.SIGNATURES["iphlpapi"].items():
        if name == "SetInterfaceDnsSettings":
            assert not hasattr(iphlpapi, name)  # `dns` falls back to the registry
        else:
            function = getattr(iphlpapi, name)
            assert (function.restype, function.argtypes) == (restype, argtypes), name
    kernel32 = dlls.load("kernel32")
    assert kernel32.CreateEventW.restype is ctypes.c_void_p
    assert kernel32.WaitForMultipleObjects.restype is ctypes.c_uint32
