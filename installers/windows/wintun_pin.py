#!/usr/bin/env python3
"""The one Wintun build wgdesk ships, pinned by SHA-256: a Windows build refuses any other wintun.dll.

    python installers/windows/wintun_pin.py installers/windows/wintun/bin/amd64/wintun.dll

exits 0 when the file is the pinned DLL, 1 (saying both hashes) otherwise. ``build.spec`` runs the
same check before it builds a Windows bundle, ``wgdesk.iss`` runs this script when it is compiled
(ISPP ``Exec``), and ``fetch-wintun.ps1`` checks the archive and then the DLL it extracts against the
same values (``tests/windows/test_wintun_pin.py`` holds its copies to these).

Where the values come from:

* ``ZIP_SHA256``: the SHA-256 wintun.net publishes for ``wintun-0.14.1.zip`` (the official archive of
  the signed DLLs); it is also the value wireguard-windows' build script downloads it with, and many
  independent projects pin the same one.
* ``DLL_SHA256["amd64"]``: Wintun publishes no hash of the DLL itself. The value is the SHA-256 of
  ``wintun/bin/amd64/wintun.dll`` inside that archive as recorded, identically, by several
  independent projects' build checks (found through code search) — it was **not** computed here (no
  network, no Windows). It is not trusted on that word alone: ``fetch-wintun.ps1`` verifies the
  archive against the official ``ZIP_SHA256`` first and then the extracted DLL against this value, so
  were it wrong the first fetch would stop with both hashes printed, and the value must then be
  replaced by the one computed from the official archive — never by a DLL from anywhere else.

Upgrading Wintun means changing ``VERSION`` and both values together, from the new official archive.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

VERSION = "0.14.1"
ZIP_SHA256 = "07c256185d6ee3652e09fa55c0b673e2624b565e02c4b9091c79ca7d2f24ef51"
DLL_SHA256 = {"amd64": "e5da8447dc2c320edc0fc52fa01885c103de8c118481f683643cacc3220dafce"}
ARCHITECTURE = "amd64"
"""The one architecture the installer ships (``ArchitecturesAllowed=x64compatible``)."""


class PinMismatch(Exception):
    """The file is not the pinned Wintun build (or no pin exists for it)."""


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check(path: Path, architecture: str = ARCHITECTURE) -> str:
    """Raise `PinMismatch` unless ``path`` is the pinned ``wintun.dll`` for ``architecture``; returns
    its hash."""
    expected = DLL_SHA256.get(architecture, "")
    if len(expected) != 64:
        raise PinMismatch(
            f"no SHA-256 pinned for Wintun {VERSION} {architecture}: fill it in from the official "
            f"wintun-{VERSION}.zip (SHA-256 {ZIP_SHA256})"
        )
    if not path.is_file():
        raise PinMismatch(f"{path}: missing (run installers/windows/fetch-wintun.ps1)")
    actual = sha256(path)
    if actual != expected:
        raise PinMismatch(
            f"{path}: SHA-256 {actual}, but Wintun {VERSION} {architecture} is pinned to {expected}: "
            "use the DLL from the official archive (installers/windows/fetch-wintun.ps1)"
        )
    return actual


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: wintun_pin.py PATH-TO-wintun.dll", file=sys.stderr)
        return 2
    try:
        digest = check(Path(argv[0]))
    except PinMismatch as exc:
        print(f"wintun_pin: {exc}", file=sys.stderr)
        return 1
    print(f"wintun.dll {VERSION} {ARCHITECTURE}: {digest} (pinned)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
