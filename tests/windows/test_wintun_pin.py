"""The Windows build accepts only the pinned wintun.dll (installers/windows/wintun_pin.py): a file whose
SHA-256 is not the pinned one fails (build.spec, the installer's compile-time check and the command line
all go through `check`), and fetch-wintun.ps1's copies of the pinned values are the same values. The
pinned DLL hash itself is not verified here (no network, no Windows): see the module's docstring."""

from __future__ import annotations

import hashlib
import importlib.util
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
WINDOWS = ROOT / "installers" / "windows"


def pin() -> ModuleType:
    spec = importlib.util.spec_from_file_location("wintun_pin", WINDOWS / "wintun_pin.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def dll(tmp_path: Path) -> Path:
    """A wintun.dll that is not the signed Wintun build."""
    path = tmp_path / "wintun.dll"
    path.write_bytes(b"MZ not the signed Wintun build")
    return path


def test_a_dll_other_than_the_pinned_one_is_refused_and_the_pinned_one_accepted(
    dll: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = pin()
    with pytest.raises(
        p.PinMismatch, match=r"SHA-256 [0-9a-f]{64}, but Wintun 0\.14\.1 amd64 is pinned to e5da"
    ):
        p.check(dll)
    monkeypatch.setitem(p.DLL_SHA256, "amd64", hashlib.sha256(dll.read_bytes()).hexdigest())
    assert p.check(dll) == p.DLL_SHA256["amd64"]
    with pytest.raises(p.PinMismatch, match="missing"):
        p.check(dll.with_name("absent.dll"))


def test_no_pin_for_an_architecture_fails_instead_of_passing(
    dll: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = pin()
    monkeypatch.setitem(p.DLL_SHA256, "amd64", "")
    with pytest.raises(
        p.PinMismatch, match=r"no SHA-256 pinned .* fill it in from the official wintun-0\.14\.1\.zip"
    ):
        p.check(dll)
    with pytest.raises(p.PinMismatch, match="no SHA-256 pinned"):
        p.check(dll, "arm64")


def test_the_command_line_exits_non_zero_on_a_mismatch(tmp_path: Path) -> None:
    """What wgdesk.iss runs at compile time (ISPP Exec): exit status 1 and both hashes on stderr."""
    dll = tmp_path / "wintun.dll"
    dll.write_bytes(b"tampered")
    result = subprocess.run(
        [sys.executable, str(WINDOWS / "wintun_pin.py"), str(dll)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert (
        hashlib.sha256(b"tampered").hexdigest() in result.stderr
        and pin().DLL_SHA256["amd64"] in result.stderr
    )


def test_the_fetch_script_the_spec_and_the_installer_use_the_same_pin() -> None:
    p = pin()
    fetch = (WINDOWS / "fetch-wintun.ps1").read_text()
    assert re.search(r"\$Version = '([^']+)'", fetch)[1] == p.VERSION  # type: ignore[index]
    assert re.search(r"\$Sha256 = '([0-9a-f]{64})'", fetch)[1] == p.ZIP_SHA256  # type: ignore[index]
    assert re.search(r"\$DllSha256 = '([0-9a-f]{64})'", fetch)[1] == p.DLL_SHA256["amd64"]  # type: ignore[index]
    assert fetch.index("$DllActual -ne $DllSha256") < fetch.index("Copy-Item $Extracted")
    spec = (ROOT / "build.spec").read_text()
    assert 'if sys.platform == "win32":' in spec and "wintun_pin.check(WINTUN_DLL)" in spec
    iss = (WINDOWS / "wgdesk.iss").read_text()
    check = re.search(r'#define WintunPin Exec\("python", "wintun_pin.py ([^"]+)", SourcePath\)', iss)
    assert check is not None and check[1] == "wintun\\bin\\amd64\\wintun.dll"
    assert f'Source: "{check[1]}"' in iss, "the file checked is the file installed"
    assert "#if WintunPin != 0\n  #error" in iss
