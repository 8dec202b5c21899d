"""The shape of the code, checked so that it stays that way: no import cycles in `wgdesk`, the app under
``mypy --strict`` with a core that imports no Qt, and no long functions in the app.

Import cycles — the rule. The graph has one node per module of `wgdesk` (a package's ``__init__.py`` is
the package's node) and one edge per import statement **anywhere** in a file: at module level, inside a
function, and under ``if TYPE_CHECKING:``. ``from P import x`` leads to the submodule ``P.x`` when there is
one, else to ``P``; relative imports are resolved. Python running ``P/__init__.py`` before ``P.x`` is not an
edge (that is how packages work, not a dependency). Function-level imports count because they are the usual
way to hide a cycle: the two modules still need each other, and the import then runs at call time (on a
worker thread, too). Type-only imports count because two modules that name each other's types are one
design split in two files. `KNOWN_CYCLES` lists the cycles outside the app that exist today, each with the
work that removes it; the test fails on any other cycle, and on a listed one that is gone (so the list only
shrinks). Inside `wgdesk.app` there is none.

Long functions — the rule. A function in `LENGTH_CHECKED` longer than `MAX_FUNCTION_LINES` (``def`` line to
its last line, docstring included) needs a docstring sentence starting with ``Long because`` that says why
it is better in one piece.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent

KNOWN_CYCLES: dict[frozenset[str], str] = {
    frozenset({"wgdesk.proto.device", "wgdesk.proto.keypair", "wgdesk.proto.peer"}): (
        "type only: a Peer names its Device, a Keypair its Peer (wireguard-go's back pointers, one Go "
        "package there). A Protocol in a leaf module would break it."
    ),
}

MAX_FUNCTION_LINES = 80
LENGTH_CHECKED = ("wgdesk",)
KNOWN_LONG: dict[str, str] = {}
"""Functions over the limit without a reason in their docstring yet, each with the work that shortens it;
the test fails on any other, and on a listed one that is no longer long (so the list only shrinks)."""
QT_FREE_APP_MODULES = (
    "wgdesk/app/keys.py",
    "wgdesk/app/network_rules.py",
    "wgdesk/app/state.py",
    "wgdesk/app/traffic.py",
    "wgdesk/app/transitions.py",
)
"""The app's core without Qt (Vorta's rule): decisions and bookkeeping that take time as an argument and
are tested as plain Python. The rest of the app is QObjects with signals (the model parts) and widgets."""


# -- the import graph -------


def _modules(root: Path, package: str) -> dict[str, Path]:
    found = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _target(name: str, modules: dict[str, Path]) -> str | None:
    """The module *name* refers to: itself, or the closest enclosing module (``a.b.attr`` -> ``a.b``)."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def _imported(
    node: ast.Import | ast.ImportFrom, module: str, is_package: bool, modules: dict[str, Path]
) -> set[str]:
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        if node.level:
            base = module.split(".") if is_package else module.split(".")[:-1]
            base = base[: len(base) - (node.level - 1)]
            source = ".".join([*base, node.module] if node.module else base)
        else:
            source = node.module or ""
        names = [f"{source}.{a.name}" if f"{source}.{a.name}" in modules else source for a in node.names]
    return {t for n in names if (t := _target(n, modules)) is not None and t != module}


def import_graph(root: Path, package: str = "wgdesk") -> dict[str, set[str]]:
    """Module -> the modules of *package* it imports anywhere in its file (see the module docstring)."""
    modules = _modules(root, package)
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        edges: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                edges |= _imported(node, module, path.name == "__init__.py", modules)
        graph[module] = edges
    return graph


def cycles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """The strongly connected components with more than one module (Tarjan), each one cycle group."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(frozenset(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles_but_the_known_ones() -> None:
    found = set(cycles(import_graph(ROOT)))
    new = [sorted(c) for c in found - set(KNOWN_CYCLES)]
    gone = [sorted(c) for c in set(KNOWN_CYCLES) - found]
    assert new == [], f"import cycles (see the rule in {Path(__file__).name}): {new}"
    assert gone == [], f"these cycles are gone: remove them from KNOWN_CYCLES: {gone}"


def test_no_known_cycle_is_in_the_app() -> None:
    assert [sorted(c) for c in KNOWN_CYCLES if any(m.startswith("wgdesk.app") for m in c)] == []


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        pytest.param(
            {"pkg/__init__.py": "", "pkg/a.py": "import pkg.b\n", "pkg/b.py": "from pkg import a\n"},
            [{"pkg.a", "pkg.b"}],
            id="module-level",
        ),
        pytest.param(
            {
                "pkg/__init__.py": "",
                "pkg/a.py": "from pkg.b import thing\n",
                "pkg/b.py": "thing = 1\ndef f():\n    from pkg.a import f\n",
            },
            [{"pkg.a", "pkg.b"}],
            id="function-level",
        ),
        pytest.param(
            {
                "pkg/__init__.py": "",
                "pkg/a.py": "from pkg.b import B\n",
                "pkg/b.py": "import typing\nif typing.TYPE_CHECKING:\n    from .c import C\nB = 1\n",
                "pkg/c.py": "from pkg import a\n",
            },
            [{"pkg.a", "pkg.b", "pkg.c"}],
            id="type-only-relative",
        ),
        pytest.param(
            {
                "pkg/__init__.py": "from pkg.a import f\n",
                "pkg/a.py": "from pkg import b\ndef f(): pass\n",
                "pkg/b.py": "import os\n",
            },
            [],
            id="package-imports-submodule",
        ),
        pytest.param(
            {
                "pkg/__init__.py": "from pkg.a import f\nX = 1\n",
                "pkg/a.py": "from pkg import X\ndef f(): pass\n",
            },
            [{"pkg", "pkg.a"}],
            id="submodule-reads-package-attribute",
        ),
    ],
)
def test_cycle_check_finds_cycles_of_every_kind(
    tmp_path: Path, files: dict[str, str], expected: list[set[str]]
) -> None:
    _write(tmp_path, files)
    assert [set(c) for c in cycles(import_graph(tmp_path, "pkg"))] == expected


# -- typing -------


def _mypy(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(VENV_BIN / "mypy"), *args], cwd=ROOT, capture_output=True, text=True)


def test_mypy_strict_on_every_package() -> None:
    # `strict = true` in pyproject.toml: every package, the Qt views included (PySide6 ships stubs, so the
    # widgets are checked against Qt's signatures too); platforms/windows is checked for win32 below
    result = _mypy("--strict", "wgdesk")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict_as_on_macos() -> None:
    """Everything but the Linux and Windows backends must import and type-check on macOS (e.g. the
    engine's link watch uses rtnetlink only under ``sys.platform == "linux"``)."""
    result = _mypy(
        "--strict", "--platform", "darwin", "wgdesk", "--exclude", "wgdesk/platforms/(linux|windows)/"
    )
    assert result.returncode == 0, result.stdout + result.stderr


WINDOWS_MODULES = (
    "wgdesk/app",
    "wgdesk/cli.py",
    "wgdesk/cli_tunnels.py",
    "wgdesk/client.py",
    "wgdesk/config",
    "wgdesk/diagnostics.py",
    "wgdesk/engine",
    "wgdesk/keystore.py",
    "wgdesk/proto",
    "wgdesk/tunnels.py",
    "wgdesk/uapi.py",
    "wgdesk/undo.py",
    "wgdesk/platforms/__init__.py",
    "wgdesk/platforms/interface.py",
    "wgdesk/platforms/errors.py",
    "wgdesk/platforms/commands.py",
    "wgdesk/platforms/files.py",
    "wgdesk/platforms/network_identity.py",
    "wgdesk/platforms/unsupported.py",
    "wgdesk/platforms/windows",
    "wgdesk/helper",
)
"""Everything that runs on Windows: the app and CLI, the client (the control pipe through the backend's
``ControlEndpoint``), the whole engine (on Wintun, its UAPI on a named pipe), the helper and the Windows
backend (which ``platforms.create`` returns as a `Platform`: mypy holds it to the interface there) — so a
Linux-only call (``fcntl``, ``socket.CMSG_SPACE``, ``AF_UNIX``, ``os.fchmod``) fails here, not on a
user's machine. Not here: ``platforms/linux``, ``platforms/darwin`` and ``platforms/unix``, never imported on
Windows (``fastpath`` is checked as far as the engine imports it; its C part is not built there yet).
This list replaced the one ``tests/windows`` kept."""


def test_mypy_strict_as_on_windows() -> None:
    files = [
        str(p.relative_to(ROOT))
        for m in WINDOWS_MODULES
        for p in ((ROOT / m).rglob("*.py") if (ROOT / m).is_dir() else [ROOT / m])
    ]
    result = _mypy("--strict", "--platform", "win32", *files)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_app_core_imports_no_qt() -> None:
    modules = _modules(ROOT, "wgdesk")
    core = {".".join(Path(m).with_suffix("").parts) for m in QT_FREE_APP_MODULES}
    offenders = []
    for module in sorted(core):
        path = modules[module]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                raw = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                raw = [node.module or ""]
            else:
                continue
            offenders += [f"{module} imports {n}" for n in raw if n.split(".")[0] == "PySide6"]
            offenders += [
                f"{module} imports {t}"
                for t in _imported(node, module, False, modules)
                if t.startswith("wgdesk.app") and t not in core
            ]
    assert offenders == []


# -- function length -------


def long_functions(root: Path, scopes: tuple[str, ...], limit: int = MAX_FUNCTION_LINES) -> list[str]:
    """``path:line name (N lines)`` for each function in *scopes* longer than *limit* lines whose docstring
    does not say ``Long because``."""
    found = []
    for scope in scopes:
        for path in sorted((root / scope).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
                if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    continue
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                if lines > limit and "Long because" not in (ast.get_docstring(node) or ""):
                    found.append(f"{path.relative_to(root)}:{node.lineno} {node.name} ({lines} lines)")
    return found


def test_no_long_functions_but_the_known_ones() -> None:
    """No function in `wgdesk` over `MAX_FUNCTION_LINES` without ``Long because`` in its docstring (the
    engine's hot loop, `Device.receive_datagrams`, is under it), except `KNOWN_LONG`."""
    found = long_functions(ROOT, LENGTH_CHECKED)
    keys = {f"{entry.split(':')[0]} {entry.split()[1]}" for entry in found}
    assert sorted(keys - set(KNOWN_LONG)) == [], found
    assert sorted(set(KNOWN_LONG) - keys) == [], "no longer long: remove from KNOWN_LONG"


def test_no_long_functions_in_the_app() -> None:
    assert long_functions(ROOT, ("wgdesk/app",)) == []


def test_length_check_finds_a_long_function_and_accepts_a_reason(tmp_path: Path) -> None:
    def body(lines: int) -> str:
        return "".join(f"    x{i} = {i}\n" for i in range(lines))

    limit = MAX_FUNCTION_LINES
    _write(
        tmp_path,
        {
            "pkg/long.py": f'def long():\n    """Sets many names."""\n{body(limit - 1)}',
            "pkg/reasoned.py": f'def reasoned():\n    """Long because it is one table."""\n{body(limit)}',
            "pkg/at_limit.py": f"def at_limit():\n{body(limit - 1)}",
        },
    )
    assert long_functions(tmp_path, ("pkg",)) == [f"pkg/long.py:1 long ({limit + 1} lines)"]
