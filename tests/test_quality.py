"""Project-wide rules checked by tools: lint and import layering (typing: tests/test_architecture.py)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent


def test_ruff_clean() -> None:
    result = subprocess.run(
        [str(VENV_BIN / "ruff"), "check", "wgdesk", "tests", "benchmarks"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level > 0:
            pkg = ".".join(path.relative_to(ROOT).with_suffix("").parts[: -node.level])
            base = f"{pkg}.{node.module}" if node.module else pkg
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def _files(package: str) -> list[Path]:
    p = ROOT / package
    return sorted(p.rglob("*.py")) if p.is_dir() else [p.with_suffix(".py")]


def _forbidden(package: str, prefixes: tuple[str, ...]) -> list[str]:
    bad = []
    for f in _files(package):
        for name in _imports(f):
            if any(name == pre or name.startswith(pre + ".") for pre in prefixes):
                bad.append(f"{f.relative_to(ROOT)} imports {name}")
    return bad


PURE_FORBIDDEN = (
    "socket",
    "os",
    "time",
    "random",
    "secrets",
    "subprocess",
    "select",
    "selectors",
    "asyncio",
    "threading",
    "datetime",
    "wgdesk.engine",
    "wgdesk.helper",
    "wgdesk.platforms",
    "wgdesk.app",
)


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        ("wgdesk/proto", (*PURE_FORBIDDEN, "wgdesk.uapi", "wgdesk.config")),
        ("wgdesk/uapi", PURE_FORBIDDEN),
        ("wgdesk/config", PURE_FORBIDDEN),
        (
            "wgdesk/app",
            (
                "subprocess",
                "wgdesk.helper",
                "wgdesk.engine",
                "wgdesk.platforms.linux",
                "wgdesk.platforms.darwin",
                "wgdesk.platforms.windows",
                "wgdesk.platforms.unix",
            ),
        ),
        ("wgdesk/client", ("PySide6", "wgdesk.app", "wgdesk.helper")),
    ],
)
def test_import_layering(package: str, forbidden: tuple[str, ...]) -> None:
    assert _forbidden(package, forbidden) == []


def test_sys_platform_branched_in_one_place() -> None:
    offenders = []
    for f in (ROOT / "wgdesk").rglob("*.py"):
        if f == ROOT / "wgdesk" / "platforms" / "__init__.py":
            continue
        if "sys.platform" in f.read_text():
            offenders.append(str(f.relative_to(ROOT)))
    assert offenders == []


def test_layering_check_detects_a_violation(tmp_path: Path) -> None:
    f = ROOT / "wgdesk" / "proto" / "_probe_violation.py"
    f.write_text("import socket\n")
    try:
        assert _forbidden("wgdesk/proto", PURE_FORBIDDEN) == [
            "wgdesk/proto/_probe_violation.py imports socket"
        ]
    finally:
        f.unlink()
