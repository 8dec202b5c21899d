"""Build the PyInstaller bundle and the .deb for the packaging tests, with a cache.

The bundle is built with the documented command (`make dist`) into
``build/packaging-cache/HASH/dist/wgdesk``, where HASH covers everything that goes into it (sources,
resources, build.spec, pyproject.toml, the Python, PyInstaller and PySide6 versions). A later
session with unchanged sources reuses it; a file lock keeps concurrent sessions from building the
same thing twice. Build times are written next to the bundle (``build-seconds``) for the notes.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / "build" / "packaging-cache"
EXECUTABLES = ("wgdesk", "wgdeskctl", "wgdesk-helper", "wgdesk-engine")
VERSION: str = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
KEEP_CACHED = 2

_INPUTS = ("build.spec", "pyproject.toml", "Makefile", "installers/pyinstaller", "wgdesk", "resources")


def source_hash() -> str:
    """SHA-256 over every file that goes into the bundle, plus the toolchain versions."""
    import PyInstaller
    import PySide6

    h = hashlib.sha256()
    h.update(f"{sys.version}|{PyInstaller.__version__}|{PySide6.__version__}".encode())
    for entry in _INPUTS:
        path = ROOT / entry
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        for f in files:
            if "__pycache__" in f.parts or f.suffix == ".pyc":
                continue
            h.update(str(f.relative_to(ROOT)).encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()[:16]


@contextmanager
def _locked() -> Iterator[None]:
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@dataclass(frozen=True)
class Bundle:
    """A built one-folder bundle: ``path`` is the directory with the executables and ``_internal``."""

    path: Path
    build_seconds: float
    cached: bool

    def executables(self) -> list[str]:
        return [name for name in EXECUTABLES if (self.path / name).is_file()]


def build_bundle() -> Bundle:
    """The bundle for the current sources, from the cache or built now with ``make dist``."""
    key = source_hash()
    slot = CACHE / key
    with _locked():
        done = slot / "done.json"
        if done.is_file():
            meta = json.loads(done.read_text())
            return Bundle(slot / "dist" / "wgdesk", meta["build_seconds"], cached=True)
        shutil.rmtree(slot, ignore_errors=True)
        started = time.monotonic()
        result = subprocess.run(
            ["make", "-s", "dist", f"DIST={slot / 'dist'}", f"WORK={slot / 'work'}"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=1800,
        )
        if result.returncode != 0:
            raise AssertionError(f"make dist failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
        seconds = time.monotonic() - started
        shutil.rmtree(slot / "work", ignore_errors=True)
        done.write_text(json.dumps({"build_seconds": seconds, "log": result.stderr[-20000:]}))
        _prune(keep=key)
        return Bundle(slot / "dist" / "wgdesk", seconds, cached=False)


def _prune(keep: str) -> None:
    slots = sorted(
        (p for p in CACHE.iterdir() if p.is_dir() and p.name != keep), key=lambda p: p.stat().st_mtime
    )
    for old in slots[: max(0, len(slots) - (KEEP_CACHED - 1))]:
        shutil.rmtree(old, ignore_errors=True)


def build_deb(bundle: Bundle, out: Path) -> Path:
    """``installers/linux/build-deb`` on `bundle` into `out` (zstd: the test needs speed, not size).

    WGDESK_ALLOW_PARTIAL lets the install tests run on what exists; test_deb asserts the full set.
    """
    env = dict(os.environ, WGDESK_ALLOW_PARTIAL="1", WGDESK_DEB_COMPRESSION="zstd", PYTHON=sys.executable)
    result = subprocess.run(
        [str(ROOT / "installers" / "linux" / "build-deb"), str(bundle.path), str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    if result.returncode != 0:
        raise AssertionError(f"build-deb failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    deb = Path(result.stdout.strip().splitlines()[-1])
    assert deb == out / f"wgdesk_{VERSION}_amd64.deb", deb
    return deb


def size_of(path: Path) -> int:
    """Bytes on disk under `path`, not following symlinks."""
    return sum(p.lstat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())
