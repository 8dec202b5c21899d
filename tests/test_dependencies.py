"""``pyproject.toml`` lists exactly what the code imports (issue 18): every declared runtime dependency is
imported somewhere in `wgdesk`, every third-party import is declared, and a dependency declared only for
some platforms (``; sys_platform == 'linux'``) is imported only by modules that run there.

Where a module runs: under ``wgdesk/platforms/linux`` (``darwin``, ``windows``) only on that OS; anywhere
else on every OS (`PLATFORM_DIRS`). An import's distribution is found through
`importlib.metadata.packages_distributions` (``nacl`` is PyNaCl's), so the packages must be installed: the
test venv has them all (``pip install -e '.[test,build]'``).
"""

from __future__ import annotations

import ast
import sys
import tomllib
from collections.abc import Mapping
from importlib.metadata import packages_distributions
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
PLATFORMS = ("linux", "darwin", "win32")
PLATFORM_DIRS = {"linux": "platforms/linux", "darwin": "platforms/darwin", "win32": "platforms/windows"}


def third_party_imports(package: Path) -> dict[str, set[str]]:
    """Top-level module name -> the files (relative to ``package``) that import it, stdlib left out."""
    found: dict[str, set[str]] = {}
    for path in sorted(package.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top not in ("__future__", package.name):
                    found.setdefault(top, set()).add(path.relative_to(package).as_posix())
    return found


def runs_on(file: str) -> tuple[str, ...]:
    """The platforms a module of the package runs on."""
    for platform, directory in PLATFORM_DIRS.items():
        if file.startswith(directory + "/"):
            return (platform,)
    return PLATFORMS


def problems(
    imports: Mapping[str, set[str]], declared: list[str], distributions: Mapping[str, list[str]]
) -> list[str]:
    """What is wrong between the ``imports`` of a package and its ``declared`` requirements."""
    requirements = {canonicalize_name(r.name): r for r in map(Requirement, declared)}
    used: set[str] = set()
    out = []
    for module, files in sorted(imports.items()):
        dists = {canonicalize_name(d) for d in distributions.get(module, [])} & set(requirements)
        if not dists:
            out.append(f"{module} is imported ({', '.join(sorted(files))}) but no dependency provides it")
            continue
        used |= dists
        for file in sorted(files):
            for platform in runs_on(file):
                if not any(_applies(requirements[d], platform) for d in dists):
                    out.append(f"{file} imports {module} on {platform}, where it is not declared")
    out += [f"{name} is declared but never imported" for name in sorted(set(requirements) - used)]
    return out


def _applies(requirement: Requirement, platform: str) -> bool:
    return requirement.marker is None or requirement.marker.evaluate({"sys_platform": platform})


PYWIN32_MODULES = (
    "pythoncom", "pywintypes", "servicemanager", "win32api", "win32con", "win32event", "win32file",
    "win32pipe",
    "win32process", "win32security", "win32service", "win32serviceutil", "winerror",
)  # fmt: skip
ELSEWHERE = {module: ["pywin32"] for module in PYWIN32_MODULES}
"""Distributions that install only on another OS, so this machine's metadata cannot name their modules:
pywin32's top-level modules (it installs them flat, each its own top-level name)."""


def test_pyproject_declares_exactly_what_wgdesk_imports() -> None:
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    distributions = {**ELSEWHERE, **packages_distributions()}
    assert problems(third_party_imports(ROOT / "wgdesk"), declared, distributions) == []


def test_the_dependency_check_finds_each_kind_of_mismatch(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    (package / "platforms" / "linux").mkdir(parents=True)
    (package / "core.py").write_text("import json\nimport requests\nfrom nacl import bindings\n")
    (package / "platforms" / "linux" / "net.py").write_text("import pyroute2\n")
    (package / "gui.py").write_text("import pyroute2.netlink\n")
    imports = third_party_imports(package)
    assert imports == {
        "requests": {"core.py"},
        "nacl": {"core.py"},
        "pyroute2": {"platforms/linux/net.py", "gui.py"},
    }
    distributions = {"nacl": ["PyNaCl"], "pyroute2": ["pyroute2"], "pytun": ["python-pytun"]}
    declared = ["pynacl>=1.5", "pyroute2; sys_platform == 'linux'", "python-pytun; sys_platform == 'linux'"]
    assert problems(imports, declared, distributions) == [
        "gui.py imports pyroute2 on darwin, where it is not declared",
        "gui.py imports pyroute2 on win32, where it is not declared",
        "requests is imported (core.py) but no dependency provides it",
        "python-pytun is declared but never imported",
    ]
