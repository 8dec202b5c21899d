"""Every Debian package the product, the build and the tests use is installed by scripts/install-test-deps.

CI runs on a long-lived machine where earlier manual installs hide a missing install step (issue: the
icon renderer's SVG delegate and the Qt xcb plugin's libxcb-shape0 were both "there" here and missing on a
fresh Debian). So this test works out what a fresh machine would have — the packages of a minimal Debian
(priority `required`) plus the README's baseline, the packages `install-test-deps` lists, and everything
those pull in by `Depends` — and checks that every program the code, tests and scripts run, and every
system library the Qt plugins and compiled modules load, comes from one of them.

Programs are found by reading the sources (argv lists and `which`/`_find` calls in Python, command words
in the shell scripts); libraries with `ldd`. `../shared/tools/fresh-machine-check` is the full check.
"""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BASELINE = {"python3", "make", "git", "ca-certificates", "iproute2", "apt"}
"""What README's quick start assumes of a fresh machine besides a minimal Debian (priority required)."""
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
PYTHON_SOURCES = ("wgdesk", "tests", "benchmarks", "installers", "scripts", "build.spec")
SHELL_SOURCES = ("scripts", "installers/linux/build-deb", ".ci/run", "Makefile")
OTHER_OS = ("wgdesk/platforms/darwin/", "wgdesk/platforms/windows/", "tests/darwin/", "scripts/verify-macos")
"""What runs (or models what runs) only on macOS or Windows: its programs are that OS's."""
NOT_NEEDED_HERE = {
    "nmcli": "used only where NetworkManager runs (network identity); tests feed recorded output",
    "iw": "used only where there is Wi-Fi (network identity); tests feed recorded output",
    "resolvconf": "one of the DNS back-ends, used only where it is installed",
    "wg-quick": "from wireguard-tools, which is in the list (kept apart only because of its /usr/bin)",
}
EXEC_CALLS = {"run", "Popen", "check_output", "check_call", "call", "exec", "popen", "execvp", "execv"}
LOOKUP_CALLS = {"which", "_find"}
_BUILTINS = (
    ". : [ alias bg break builtin case cd command continue declare do done echo elif else esac eval exec "
    "exit export false fg fi for function getopts hash if in kill local mapfile printf pwd read readonly "
    "return select set shift source test then time trap true type ulimit umask unset until wait while"
)
SHELL_BUILTINS = set(_BUILTINS.split())


def apt_packages() -> set[str]:
    text = (ROOT / "scripts" / "install-test-deps").read_text()
    body = re.search(r"APT_PACKAGES=\((.*?)\)", text, re.S)
    assert body is not None, "APT_PACKAGES=( … ) not found in scripts/install-test-deps"
    return set(body.group(1).split())


@cache
def installed() -> dict[str, tuple[str, list[list[str]], list[str]]]:
    """Installed packages: name → (priority, Depends + Pre-Depends as alternatives, Provides)."""
    fields = "${Package}\t${Priority}\t${Depends}, ${Pre-Depends}\t${Provides}\t${Status}\n"
    out = subprocess.run(
        ["dpkg-query", "-W", "-f", fields], capture_output=True, text=True, check=True
    ).stdout

    def names(field: str) -> list[list[str]]:
        groups = []
        for group in field.split(","):
            alts = [re.sub(r"[\s(].*$", "", a.strip()).split(":")[0] for a in group.split("|")]
            if alts and alts[0]:
                groups.append(alts)
        return groups

    packages = {}
    for line in out.splitlines():
        name, priority, depends, provides, status = line.split("\t")
        if status.endswith(" installed"):
            packages[name] = (priority, names(depends), [p[0] for p in names(provides)])
    return packages


@cache
def fresh_machine() -> frozenset[str]:
    """The packages a fresh machine has after install-test-deps: required ones, the baseline, the list,
    and their Depends. Of alternatives only the first counts (apt installs it when none is there yet);
    a virtual package counts as any installed provider."""
    pkgs = installed()
    providers: dict[str, list[str]] = {}
    for name, (_, _, provides) in pkgs.items():
        for virtual in provides:
            providers.setdefault(virtual, []).append(name)
    todo = [n for n, (prio, _, _) in pkgs.items() if prio == "required"] + sorted(BASELINE | apt_packages())
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for alts in pkgs.get(name, ("", [], []))[1]:
            first = alts[0]
            todo += [first] if first in pkgs else providers.get(first, [])
    return frozenset(seen)


def owners(paths: list[str]) -> dict[str, str]:
    """path → package, as dpkg knows it (with merged /usr, dpkg may know /lib/… for /usr/lib/…)."""
    result: dict[str, str] = {}
    candidates: dict[str, str] = {}
    for p in paths:
        for c in (p, str(Path(p).resolve())):
            candidates[c] = p
            if c.startswith("/usr/") and c.split("/")[2] in ("lib", "lib64", "bin", "sbin"):
                candidates[c[4:]] = p
    out = subprocess.run(
        ["dpkg-query", "-S", *candidates], capture_output=True, text=True, check=False
    ).stdout
    for line in out.splitlines():
        pkgs, _, path = line.partition(": ")
        if path in candidates and "diversion" not in pkgs:
            result.setdefault(candidates[path], pkgs.split(",")[0].split(":")[0].strip())
    return result


def unlisted(files: dict[str, str]) -> list[str]:
    """For each file (path → what it is, for the message) that no fresh-machine package owns, why."""
    owner = owners(list(files))
    fresh = fresh_machine()
    problems = []
    for path, what in sorted(files.items(), key=lambda kv: kv[1]):
        pkg = owner.get(path)
        if pkg is None:
            problems.append(f"{what}: {path} is not from a Debian package")
        elif pkg not in fresh:
            problems.append(f"{what}: package {pkg} is not in APT_PACKAGES")
    return problems


def _files(sources: tuple[str, ...], suffix: str | None) -> list[Path]:
    found = []
    for s in sources:
        p = ROOT / s
        for f in [p] if p.is_file() else sorted(p.rglob("*")):
            if f.is_file() and "__pycache__" not in f.parts and (suffix is None or f.suffix == suffix):
                found.append(f)
    return found


def _is_python(f: Path) -> bool:
    return f.suffix in (".py", ".spec") or f.read_bytes()[:64].startswith(b"#!/usr/bin/env python")


def python_programs() -> dict[str, str]:
    """Program name → first place (file:line) the Python sources run or look it up."""
    found: dict[str, str] = {}
    for f in _files(PYTHON_SOURCES, None):
        rel = str(f.relative_to(ROOT))
        if rel.startswith(OTHER_OS) or not _is_python(f):
            continue
        for node in ast.walk(ast.parse(f.read_text(), rel)):
            names: list[ast.expr] = []
            if isinstance(node, ast.Call) and node.args:
                callee = (
                    node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
                )
                first = node.args[0]
                if isinstance(first, ast.List | ast.Tuple) and first.elts:
                    names.append(first.elts[0])
                elif callee in EXEC_CALLS | LOOKUP_CALLS:
                    names.append(first)
            elif isinstance(node, ast.For) and isinstance(node.iter, ast.Tuple | ast.List):
                names += node.iter.elts  # for tool in ("Xvfb", "trayer"): shutil.which(tool)
            for n in names:
                if (
                    isinstance(n, ast.Constant)
                    and isinstance(n.value, str)
                    and re.fullmatch(r"[\w.+-]+", n.value)
                ):
                    found.setdefault(n.value, f"{rel}:{n.lineno}")
    return found


def shell_programs() -> dict[str, str]:
    """Program name → first place the shell scripts and the Makefile run it (command words only)."""
    found: dict[str, str] = {}
    for f in _files(SHELL_SOURCES, None):
        if _is_python(f) or str(f.relative_to(ROOT)).startswith(OTHER_OS):
            continue
        for lineno, raw in enumerate(f.read_text().splitlines(), 1):
            line = re.sub(r"(^|\s)#.*$", "", raw)
            for part in re.split(r"\|\||&&|[|;]|\$\(|`|\bthen\b|\bdo\b|\belse\b", line):
                words = part.strip().split()
                while words and (
                    re.fullmatch(r"\w+=\S*", words[0]) or words[0] in ("!", "sudo", "$SUDO", "{")
                ):
                    words.pop(0)
                if words and re.fullmatch(r"[a-z][\w.+-]*", words[0]) and words[0] not in SHELL_BUILTINS:
                    found.setdefault(words[0], f"{f.relative_to(ROOT)}:{lineno}")
    return found


def test_every_program_used_comes_from_an_installed_package() -> None:
    programs = {**shell_programs(), **python_programs()}
    paths: dict[str, str] = {}
    for name in programs:
        path = shutil.which(name, path=SYSTEM_PATH)
        if path is not None and name not in NOT_NEEDED_HERE:
            paths[path] = name
    assert {"ip", "nft", "wg", "wireguard-go", "Xvfb", "tcpdump", "dpkg-deb"} <= set(
        paths.values()
    )  # control
    problems = unlisted({path: f"{name} (used at {programs[name]})" for path, name in paths.items()})
    assert not problems, "scripts/install-test-deps misses:\n" + "\n".join(problems)


QT = Path(__import__("PySide6").__file__).parent / "Qt"
QT_PLUGIN_DIRS = (
    "platforms", "xcbglintegrations", "imageformats", "iconengines", "platforminputcontexts", "tls",
    "generic", "platformthemes", "networkinformation",
)  # fmt: skip
"""Where Qt finds what the app loads on X11 and offscreen (Wayland sessions bring their own libraries)."""


def unused_plugins() -> tuple[str, ...]:
    """build.spec's QT_PLUGINS_UNUSED: plugins neither the bundle nor the app needs."""
    for node in ast.walk(ast.parse((ROOT / "build.spec").read_text())):
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "QT_PLUGINS_UNUSED":
            value = ast.literal_eval(node.value)
            assert isinstance(value, tuple)
            return value
    raise AssertionError("QT_PLUGINS_UNUSED not found in build.spec")


def compiled_modules() -> list[Path]:
    """The ELF files whose system libraries must be there: Qt plugins, and the extension modules of the
    packages wgdesk imports (cryptography, nacl, cffi)."""
    unused = unused_plugins()
    files = [
        f
        for d in QT_PLUGIN_DIRS
        for f in sorted((QT / "plugins" / d).glob("*.so"))
        if not any(f"{d}/{f.name}".startswith(u) for u in unused)
    ]
    site = (
        Path(sys.modules["cryptography"].__file__ or "").parents[1] if "cryptography" in sys.modules else None
    )
    if site is None:
        import cryptography

        site = Path(cryptography.__file__ or "").parents[1]
    for package in ("cryptography", "nacl", "wgdesk"):
        files += sorted((site / package).rglob("*.so"))
    files += sorted(site.glob("_cffi_backend*.so"))
    return files


def test_every_library_the_qt_plugins_and_extensions_load_comes_from_an_installed_package() -> None:
    files = compiled_modules()
    assert any(f.name == "libqxcb.so" for f in files)  # control
    needed: dict[str, str] = {}
    missing = []
    for f in files:
        out = subprocess.run(["ldd", str(f)], capture_output=True, text=True, check=False).stdout
        found = dict(m.groups() for m in re.finditer(r"^\s*(\S+) => (\S+)", out, re.M))
        if any(lib.startswith("libQt6") and path == "not" for lib, path in found.items()):
            continue  # needs a Qt add-on PySide6-Essentials does not ship: this plugin never loads
        shown = f.relative_to(QT.parents[1]) if QT.parents[1] in f.parents else f
        missing += [f"{lib} (needed by {shown})" for lib, path in found.items() if path == "not"]
        for path in found.values():
            if path != "not" and sys.prefix not in path and str(QT) not in path:
                needed.setdefault(path, f.name)
    assert not missing, "libraries not found:\n" + "\n".join(missing)
    problems = unlisted({path: f"{Path(path).name} (loaded by {user})" for path, user in needed.items()})
    assert not problems, "scripts/install-test-deps misses:\n" + "\n".join(problems)


def test_the_closure_is_computed_from_real_dependencies() -> None:
    """The oracle itself: a listed package's dependency is in, a package nothing asks for is not."""
    fresh = fresh_machine()
    assert {"wireguard-tools", "libc6", "coreutils", "dpkg"} <= fresh
    pkgs = installed()
    assert any(name not in fresh for name in pkgs), "every installed package counted as fresh: no check"
