"""The .deb from installers/linux/build-deb: control data and file list (`dpkg-deb --info/--contents`)."""

from __future__ import annotations

import os
import re
import struct
import subprocess
from pathlib import Path

import pytest

from tests.packaging.artifacts import EXECUTABLES, VERSION

pytestmark = pytest.mark.slow

UNIT = "./lib/systemd/system/wgdesk-helper.service"
SHARED_FILES = {
    "./usr/share/applications/wgdesk.desktop",
    "./usr/share/mime/packages/wgdesk.xml",
    "./usr/share/icons/hicolor/scalable/apps/wgdesk.svg",
    "./usr/share/doc/wgdesk/control-protocol.md",
    "./etc/wgdesk/helper.toml",
    UNIT,
}
ALLOWED_PREFIXES = ("./opt/wgdesk/", "./usr/bin/", "./usr/share/", "./lib/systemd/system/", "./etc/wgdesk/")


def control(deb: Path) -> dict[str, str]:
    text = subprocess.run(
        ["dpkg-deb", "--field", str(deb)], capture_output=True, text=True, check=True
    ).stdout
    fields: dict[str, str] = {}
    key = ""
    for line in text.splitlines():
        if line[:1].isspace():
            fields[key] += "\n" + line
        else:
            key, _, value = line.partition(":")
            fields[key] = value.strip()
    return fields


def contents(deb: Path) -> dict[str, tuple[str, str, str]]:
    """path -> (mode, owner, symlink target or "")."""
    out = subprocess.run(
        ["dpkg-deb", "--contents", str(deb)], capture_output=True, text=True, check=True
    ).stdout
    entries = {}
    for line in out.splitlines():
        mode, owner, _size, _date, _time, rest = line.split(None, 5)
        path, _, target = rest.partition(" -> ")
        entries[path.rstrip("/") if path != "./" else path] = (mode, owner, target)
    return entries


def test_control_fields(deb: Path) -> None:
    fields = control(deb)
    assert fields["Package"] == "wgdesk"
    assert fields["Version"] == VERSION
    assert fields["Architecture"] == "amd64"
    assert deb.name == f"wgdesk_{VERSION}_amd64.deb"
    depends = {re.split(r"[ (]", d.strip())[0] for d in fields["Depends"].split(",")}
    # from dpkg-shlibdeps (the desktop stack comes from the system) and the maintainer scripts
    assert {"libc6", "libxcb1", "libfontconfig1", "libglib2.0-0", "passwd", "init-system-helpers"} <= depends
    assert not {d for d in depends if d.startswith("python")}, "no Python needed on the target"


def test_maintainer_scripts_are_in_the_package(deb: Path, tmp_path: Path) -> None:
    subprocess.run(["dpkg-deb", "--control", str(deb), str(tmp_path)], check=True)
    for script in ("postinst", "prerm", "postrm"):
        assert (tmp_path / script).stat().st_mode & 0o777 == 0o755
    assert (tmp_path / "conffiles").read_text().split() == ["/etc/wgdesk/helper.toml"]


def test_file_list(deb: Path) -> None:
    entries = contents(deb)
    for exe in EXECUTABLES:
        assert entries[f"./usr/bin/{exe}"][2] == f"/opt/wgdesk/{exe}", exe
        assert entries[f"./opt/wgdesk/{exe}"][0] == "-rwxr-xr-x", exe
    assert set(entries) >= SHARED_FILES
    assert "./opt/wgdesk/_internal/base_library.zip" in entries
    assert not [p for p in entries if p.startswith("./usr/share/polkit-1/")]  # no polkit policy
    # every path is inside one of the allowed trees, or one of their parent directories
    strays = [
        p
        for p in entries
        if not p.startswith(ALLOWED_PREFIXES)
        and not any(a.startswith(p.rstrip("/") + "/") for a in ALLOWED_PREFIXES)
    ]
    assert strays == []
    assert {owner for _mode, owner, _t in entries.values()} == {"root/root"}
    assert not [p for p, (mode, _o, _t) in entries.items() if mode[0] != "l" and mode[8] == "w"], (
        "world-writable files"
    )


def test_packaged_desktop_entry_validates(deb: Path, tmp_path: Path) -> None:
    subprocess.run(["dpkg-deb", "--extract", str(deb), str(tmp_path)], check=True)
    desktop = tmp_path / "usr" / "share" / "applications" / "wgdesk.desktop"
    result = subprocess.run(["desktop-file-validate", str(desktop)], capture_output=True, text=True)
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout
    assert "ExecStart=/opt/wgdesk/wgdesk-helper" in (tmp_path / UNIT).read_text() or (
        "ExecStart=/usr/bin/wgdesk-helper" in (tmp_path / UNIT).read_text()
    )


def test_png_icons_are_rendered_at_their_sizes(deb: Path, tmp_path: Path) -> None:
    """Qt renders the hicolor PNGs (installers/icons.py): each is a PNG of its directory's size, with
    an alpha channel and the icon's blue filling its centre."""
    subprocess.run(["dpkg-deb", "--extract", str(deb), str(tmp_path)], check=True)
    for size in (48, 128, 256):
        data = (tmp_path / f"usr/share/icons/hicolor/{size}x{size}/apps/wgdesk.png").read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        width, height, depth, colour = struct.unpack(">IIBB", data[16:26])
        assert (width, height, depth, colour) == (size, size, 8, 6)  # 6: RGBA
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
        from PySide6.QtGui import QImage

        image = QImage.fromData(data)
        assert image.pixelColor(size // 2, size // 6).name() == "#1e3a8a"  # the tile, between rim and key
        assert image.pixelColor(0, 0).alpha() == 0  # the rounded corner stays transparent
