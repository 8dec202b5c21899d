"""pywin32 is declared for Windows only (``sys_platform == 'win32'``) and imported only by the Windows
backend. pywin32 cannot be installed on Linux, so the general check of declared dependencies against
imports (which asks the installed distributions who provides a module) cannot see its modules: this
test names them — pywin32's top-level modules the backend uses, found in ``import`` statements and in
`identity.LazyModule` names."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
PYWIN32_MODULES = frozenset(
    {
        "pywintypes",
        "servicemanager",
        "win32api",
        "win32event",
        "win32file",
        "win32pipe",
        "win32process",
        "win32security",
        "win32service",
        "win32serviceutil",
    }
)
"""pywin32's modules wgdesk uses (each ships in pywin32's ``win32/lib`` or ``win32`` directories)."""


def pywin32_uses() -> dict[str, set[str]]:
    """Module -> files under ``wgdesk`` that import it (or name it to `LazyModule`)."""
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / "wgdesk").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name.split(".")[0] for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module.split(".")[0]]
            elif (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "LazyModule"
                and node.args
                and isinstance(node.args[0], ast.Constant)
            ):
                names = [str(node.args[0].value)]
            for name in names:
                if name in PYWIN32_MODULES or name.startswith("win32"):
                    found.setdefault(name, set()).add(path.relative_to(ROOT).as_posix())
    return found


def test_pywin32_is_declared_for_windows_only_and_used_only_there() -> None:
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    pywin32 = [r for r in map(Requirement, declared) if r.name.lower() == "pywin32"]
    assert len(pywin32) == 1 and pywin32[0].marker is not None
    assert pywin32[0].marker.evaluate({"sys_platform": "win32"})
    assert not pywin32[0].marker.evaluate({"sys_platform": "linux"})
    assert not pywin32[0].marker.evaluate({"sys_platform": "darwin"})
    uses = pywin32_uses()
    assert set(uses) <= PYWIN32_MODULES, f"not pywin32's (or not listed here): {set(uses) - PYWIN32_MODULES}"
    assert {"win32pipe", "win32serviceutil", "win32process"} <= set(uses), "the scan finds the known uses"
    outside = {f for files in uses.values() for f in files if not f.startswith("wgdesk/platforms/windows/")}
    assert outside == set(), f"pywin32 imported outside the Windows backend: {outside}"
