"""The ctypes structures of `wgdesk.platforms.windows.structures` (and the constants of the
``HEADER_CONSTANTS`` of `wfp`, `pipes`, `service`, `service_host`, `service_stop`, `defaultroute`,
`pipe_connection`, `directories`) held against the Windows SDK headers of Debian's mingw-w64: a C file of
``_Static_assert`` lines generated from the Python definitions (size and every field's offset) must
compile for ``x86_64-w64-mingw32``. The numbers come from the compiler reading the headers, not from
anyone's memory; the Python-side sizes below only make a change visible in review."""

from __future__ import annotations

import ctypes
import shutil
import subprocess
from pathlib import Path

import pytest

from wgdesk.platforms.windows import (
    defaultroute,
    directories,
    pipe_connection,
    pipes,
    service,
    service_host,
    service_stop,
    structures,
    wfp,
)
from wgdesk.platforms.windows.structures import LAYOUTS

COMPILER = "x86_64-w64-mingw32-gcc"
HEADERS = (
    "winsock2.h",
    "windows.h",
    "sddl.h",
    "aclapi.h",
    "ws2ipdef.h",
    "iphlpapi.h",
    "netioapi.h",
    "fwpmu.h",
    "shlobj.h",
    "stddef.h",
)
C_MEMBER = {"pointer": "byteBlob"}
"""Our name of a union member → the SDK's (one pointer stands for all of FWP_VALUE0's)."""

needs_mingw = pytest.mark.skipif(
    shutil.which(COMPILER) is None, reason=f"{COMPILER} missing: run scripts/install-test-deps"
)


def members(structure: type[ctypes.Structure] | type[ctypes.Union]) -> list[tuple[str, int]]:
    """(C member designator, offset) of every field; an anonymous union's members in its place."""
    anonymous = getattr(structure, "_anonymous_", ())
    found: list[tuple[str, int]] = []
    for name, kind in structure._fields_:
        offset = getattr(structure, name).offset
        if name in anonymous:
            found += [(C_MEMBER.get(inner, inner), offset + o) for inner, o in members(kind)]
        else:
            found.append((name, offset))
    return found


def static_asserts(overrides: dict[str, int] | None = None) -> str:
    lines = [f"#include <{header}>" for header in HEADERS]
    for c_name, structure in LAYOUTS:
        size = (overrides or {}).get(c_name, ctypes.sizeof(structure))
        lines.append(f'_Static_assert(sizeof({c_name}) == {size}, "size of {c_name}");')
        for member, offset in members(structure):
            lines.append(
                f'_Static_assert(offsetof({c_name}, {member}) == {offset}, "offset of {c_name}.{member}");'
            )
    for expression, value in {
        **wfp.HEADER_CONSTANTS,
        **pipes.HEADER_CONSTANTS,
        **service.HEADER_CONSTANTS,
        **service_host.HEADER_CONSTANTS,
        **service_stop.HEADER_CONSTANTS,
        **defaultroute.HEADER_CONSTANTS,
        **pipe_connection.HEADER_CONSTANTS,
        **directories.HEADER_CONSTANTS,
    }.items():
        lines.append(f'_Static_assert((unsigned long long)({expression}) == {value}ULL, "{expression}");')
    return "\n".join(lines) + "\n"


def compile_c(source: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "layouts.c"
    path.write_text(source)
    return subprocess.run(
        [COMPILER, "-fsyntax-only", "-std=gnu11", "-D_WIN32_WINNT=0x0A00", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )


@needs_mingw
def test_every_structure_matches_the_sdk_headers(tmp_path: Path) -> None:
    source = static_asserts()
    assert source.count("_Static_assert") > 150
    result = compile_c(source, tmp_path)
    assert result.returncode == 0, result.stderr[-4000:]


@needs_mingw
def test_the_check_fails_on_a_wrong_size(tmp_path: Path) -> None:
    """The program above can fail: one size off by 8 and the compiler names it."""
    result = compile_c(
        static_asserts({"MIB_IPFORWARD_ROW2": ctypes.sizeof(structures.MIB_IPFORWARD_ROW2) + 8}), tmp_path
    )
    assert result.returncode != 0
    assert "size of MIB_IPFORWARD_ROW2" in result.stderr


def test_sizes_on_the_python_side() -> None:
    sizes = {name: ctypes.sizeof(structure) for name, structure in LAYOUTS}
    assert sizes["GUID"] == 16
    assert sizes["NET_LUID"] == 8
    assert sizes["SOCKADDR_INET"] == 28
    assert sizes["MIB_UNICASTIPADDRESS_ROW"] == 80
    assert sizes["MIB_IPFORWARD_ROW2"] == 104
    assert sizes["MIB_IPINTERFACE_ROW"] == 168
    assert sizes["FWPM_FILTER0"] == 200


def test_dns_interface_settings_has_its_documented_layout() -> None:
    """Not in mingw-w64 10's headers: held against Microsoft's declaration (ULONG Version; ULONG64
    Flags; PWSTR Domain, NameServer, SearchList; four ULONGs; PWSTR ProfileNameServer)."""
    s = structures.DNS_INTERFACE_SETTINGS
    assert ctypes.sizeof(s) == 64
    assert [s.Flags.offset, s.NameServer.offset, s.SearchList.offset, s.RegistrationEnabled.offset] == [
        8,
        24,
        32,
        40,
    ]
    assert s.ProfileNameServer.offset == 56


def test_no_platform_dependent_widths() -> None:
    """``wintypes.LONG``, ``c_long``, ``c_int``, ``c_wchar`` are a platform's C types (``c_long``: 8 bytes on
    Linux, 4 on Windows). ctypes makes ``c_uint64`` the very class ``c_ulong`` on Linux, so the types
    cannot tell: the source may not name them."""
    import ast

    forbidden = {
        "wintypes",
        "c_long",
        "c_ulong",
        "c_int",
        "c_uint",
        "c_wchar",
        "c_wchar_p",
        "c_short",
        "c_ushort",
    }
    tree = ast.parse(Path(structures.__file__).read_text())
    used = {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)}
    used |= {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
    used |= {
        alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) for alias in node.names
    }
    assert not used & forbidden
