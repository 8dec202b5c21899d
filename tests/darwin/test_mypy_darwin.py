"""`mypy --platform darwin` over everything that runs on a Mac (issue 15): the whole package but the
Linux and Windows backends (which a Mac never imports: `wgdesk.platforms.create` branches on
``sys.platform``, which mypy follows), and ``--strict`` over the macOS backend itself. A module that
uses a Linux-only name (``socket.SO_MARK``, ``os.setresuid``) where a Mac runs it fails here."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MYPY = str(Path(sys.executable).parent / "mypy")


def _mypy(*args: str) -> None:
    result = subprocess.run([MYPY, "--platform", "darwin", *args], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_everything_a_mac_runs_type_checks_for_darwin() -> None:
    _mypy("--exclude", "^wgdesk/platforms/(linux|windows)/", "wgdesk")


def test_the_macos_backend_is_strict() -> None:
    _mypy("--strict", "wgdesk/platforms/darwin", "wgdesk/platforms/unix", "wgdesk/engine/tun.py")
