"""The PyInstaller bundle (`make dist`): four executables on one shared set of libraries."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.packaging.artifacts import EXECUTABLES, ROOT, VERSION, Bundle

pytestmark = pytest.mark.slow


def elf_files(root: Path) -> list[Path]:
    out = []
    for p in sorted(root.rglob("*")):
        if p.is_file() and not p.is_symlink():
            with open(p, "rb") as f:
                if f.read(4) == b"\x7fELF":
                    out.append(p)
    return out


def qt_modules_imported_by_wgdesk() -> set[str]:
    found: set[str] = set()
    for source in (ROOT / "wgdesk").rglob("*.py"):
        found |= set(re.findall(r"\bPySide6\.(Qt\w+)", source.read_text(encoding="utf-8")))
    return found


def test_bundle_has_the_four_executables(bundle: Bundle) -> None:
    assert bundle.executables() == list(EXECUTABLES)


def test_executables_share_one_set_of_libraries(bundle: Bundle) -> None:
    top = {p.name for p in bundle.path.iterdir()}
    assert top <= {*EXECUTABLES, "_internal"}, top
    for name in bundle.executables():
        # bootloader + this executable's scripts and pure-Python archive; the libraries live in _internal/
        assert (bundle.path / name).stat().st_size < 12 * 2**20, name
    assert len(list(bundle.path.rglob("libpython3*.so*"))) == 1
    assert len(list(bundle.path.rglob("libQt6Core.so*"))) <= 2  # the library and its top-level symlink
    assert sum(1 for p in bundle.path.rglob("libQt6Core.so*") if not p.is_symlink()) == 1


def test_only_the_qt_modules_the_code_imports(bundle: Bundle) -> None:
    bundled = {p.name.split(".")[0] for p in (bundle.path / "_internal" / "PySide6").glob("Qt*.so")}
    assert bundled == qt_modules_imported_by_wgdesk()


def test_system_libraries_come_from_the_system(bundle: Bundle) -> None:
    """Only libpython is bundled from the host; X11, Wayland, GL, glib, OpenSSL… are .deb dependencies."""
    internal = bundle.path / "_internal"
    copied = [p.name for p in internal.glob("lib*.so*") if not p.is_symlink()]
    assert [n for n in copied if not n.startswith("libpython")] == []


def test_every_library_resolves(bundle: Bundle) -> None:
    internal = bundle.path / "_internal"
    env = dict(os.environ, LD_LIBRARY_PATH=str(internal))
    missing = {}
    for elf in elf_files(bundle.path):
        out = subprocess.run(["ldd", str(elf)], capture_output=True, text=True, env=env).stdout
        lost = [line.split()[0] for line in out.splitlines() if "not found" in line]
        if lost:
            missing[str(elf.relative_to(bundle.path))] = lost
    assert missing == {}


def test_unused_qt_plugins_are_left_out(bundle: Bundle) -> None:
    plugins = {
        str(p.relative_to(bundle.path / "_internal" / "PySide6" / "Qt" / "plugins"))
        for p in (bundle.path / "_internal" / "PySide6" / "Qt" / "plugins").rglob("*.so")
    }
    assert {
        "platforms/libqxcb.so",
        "platforms/libqwayland.so",
        "platforms/libqoffscreen.so",
        "imageformats/libqsvg.so",
        "iconengines/libqsvgicon.so",
    } <= plugins
    assert not {"platforms/libqeglfs.so", "platforms/libqvnc.so", "platformthemes/libqgtk3.so"} & plugins


@pytest.mark.parametrize(("exe", "expected"), [("wgdeskctl", VERSION), ("wgdesk-engine", f"v{VERSION}")])
def test_version(bundle: Bundle, exe: str, expected: str) -> None:
    result = subprocess.run([str(bundle.path / exe), "--version"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert expected in result.stdout.split(), result.stdout


def test_each_executable_runs_only_its_own_entry_point(bundle: Bundle) -> None:
    from PyInstaller.archive.readers import CArchiveReader

    launchers = {f"run_{name.replace('-', '_')}" for name in EXECUTABLES}
    for name in bundle.executables():
        toc = set(CArchiveReader(str(bundle.path / name)).toc)
        assert toc & launchers == {f"run_{name.replace('-', '_')}"}, name
        assert "rth_environment" in toc, name


def test_every_wgdesk_module_is_bundled(bundle: Bundle) -> None:
    """Also those only imported dynamically (importlib), which PyInstaller's analysis cannot see."""
    from PyInstaller.archive.readers import CArchiveReader

    sources = {
        ".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        for p in (ROOT / "wgdesk").rglob("*.py")
    }
    for name in bundle.executables():
        pyz = CArchiveReader(str(bundle.path / name)).open_embedded_archive("PYZ.pyz")
        assert sources - set(pyz.toc) == set(), name


def test_runtime_hook_gives_children_the_original_library_path() -> None:
    """Programs the helper runs (ip, nft) must load the system's libraries, not the bundle's."""
    hook = (ROOT / "installers" / "pyinstaller" / "rth_environment.py").read_text()
    child = "\nimport subprocess\nprint(subprocess.run(['env'], capture_output=True, text=True).stdout)\n"
    for before, expected in (({"LD_LIBRARY_PATH_ORIG": "/opt/x"}, ["LD_LIBRARY_PATH=/opt/x"]), ({}, [])):
        env = {k: v for k, v in os.environ.items() if not k.startswith("LD_LIBRARY_PATH")}
        env.update(before, LD_LIBRARY_PATH="/opt/wgdesk/_internal")
        out = subprocess.run(
            ["python3", "-c", hook + child], env=env, capture_output=True, text=True, check=True
        ).stdout.splitlines()
        assert [line for line in out if line.startswith("LD_LIBRARY_PATH")] == expected


def test_the_engine_bundles_the_compiled_data_path(bundle: Bundle) -> None:
    """The extension module is in _internal/ next to its package, and the bundled engine loads it
    (libcrypto comes from the system, like the other system libraries)."""
    assert list((bundle.path / "_internal" / "wgdesk" / "fastpath").glob("_fastpath*.so"))
    result = subprocess.run(
        [str(bundle.path / "wgdesk-engine"), "--version"], capture_output=True, text=True, timeout=60
    )
    assert "Data path: compiled data path" in result.stdout, result.stdout + result.stderr
