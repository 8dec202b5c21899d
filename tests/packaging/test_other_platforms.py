"""macOS (.pkg) and Windows (Inno Setup) installer definitions, which cannot run here.

Their content is parsed and cross-checked against the bundle layout build.spec produces; the
macOS build script runs with `pkgbuild`/`productbuild` replaced by recorders, and the exact commands
and staged payload are asserted.
"""

from __future__ import annotations

import os
import plistlib
import re
import shlex
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.packaging.artifacts import EXECUTABLES, ROOT, VERSION, Bundle

MACOS = ROOT / "installers" / "macos"
WINDOWS = ROOT / "installers" / "windows"
APP_MACOS = "/Applications/wgdesk.app/Contents/MacOS"
DAEMON = "/Library/LaunchDaemons/org.wgdesk.helper.plist"


# -- macOS --------------------------------------------------------------------------------------


def info_plist() -> dict[str, object]:
    with open(MACOS / "Info.plist", "rb") as f:
        return plistlib.load(f)


def test_info_plist_document_types() -> None:
    info = info_plist()
    assert info["CFBundleExecutable"] == "wgdesk"
    assert info["CFBundlePackageType"] == "APPL"
    imported = {t["UTTypeIdentifier"]: t for t in info["UTImportedTypeDeclarations"]}  # type: ignore[attr-defined]
    config = imported["com.wireguard.config"]
    assert config["UTTypeTagSpecification"]["public.filename-extension"] == ["conf"]
    assert "public.plain-text" in config["UTTypeConformsTo"]
    for doc in info["CFBundleDocumentTypes"]:  # type: ignore[attr-defined]
        for uti in doc["LSItemContentTypes"]:
            assert uti in imported or uti.startswith("public."), uti
        # .conf is not ours alone: offer wgdesk in "Open With", never take over the default.
        assert doc["LSHandlerRank"] == "Alternate"
    assert any("com.wireguard.config" in d["LSItemContentTypes"] for d in info["CFBundleDocumentTypes"])  # type: ignore[attr-defined]


def test_launch_daemon() -> None:
    with open(MACOS / "org.wgdesk.helper.plist", "rb") as f:
        daemon = plistlib.load(f)
    assert daemon["Label"] == Path(DAEMON).stem
    # the boot-time block runs first and execs the helper (tests/darwin/test_bootblock.py)
    assert daemon["ProgramArguments"] == [
        "/Library/Application Support/wgdesk/boot-block",
        f"{APP_MACOS}/wgdesk-helper",
    ]
    assert daemon["RunAtLoad"] is True and daemon["KeepAlive"] is True


def test_distribution_names_the_component_build_pkg_makes() -> None:
    root = ET.parse(MACOS / "Distribution.xml").getroot()
    assert root.tag == "installer-gui-script"
    refs = [r for r in root.iter("pkg-ref") if (r.text or "").strip()]
    assert [(r.get("id"), r.text) for r in refs] == [("org.wgdesk.pkg", "wgdesk-component.pkg")]
    assert refs[0].get("version") == "@VERSION@"
    build_pkg = (MACOS / "build-pkg").read_text()
    assert "--identifier org.wgdesk.pkg" in build_pkg and "wgdesk-component.pkg" in build_pkg


@pytest.mark.parametrize("script", ["preinstall", "postinstall"])
def test_pkg_scripts(script: str) -> None:
    path = MACOS / "scripts" / script
    assert path.stat().st_mode & 0o111
    assert subprocess.run(["sh", "-n", str(path)]).returncode == 0
    text = path.read_text()
    if script == "postinstall":
        assert f"PLIST={DAEMON}" in text and 'launchctl bootstrap system "$PLIST"' in text
        assert "dseditgroup -o create" in text and " wgdesk\n" in text


RECORDER = """#!/bin/sh
# records argv; pkgbuild also lists the payload it was given; both create their output file
log="$RECORD_DIR/$(basename "$0").log"
for a in "$@"; do printf '%s\\n' "$a"; done >"$log"
if [ "$(basename "$0")" = pkgbuild ]; then
  root=""; prev=""
  for a in "$@"; do [ "$prev" = --root ] && root="$a"; prev="$a"; done
  (cd "$root" && find . | sort) >"$RECORD_DIR/payload.txt"
  cat "$root/Library/LaunchDaemons/"*.plist >"$RECORD_DIR/daemon.plist"
fi
for last in "$@"; do :; done
: >"$last"
"""


@pytest.mark.slow
def test_build_pkg_commands_and_payload(bundle: Bundle, tmp_path: Path) -> None:
    """build-pkg on a wgdesk.app laid out as PyInstaller's BUNDLE lays out this bundle's executables."""
    app = tmp_path / "wgdesk.app"
    (app / "Contents" / "MacOS").mkdir(parents=True)
    (app / "Contents" / "Frameworks").mkdir()
    for exe in bundle.executables():
        target = app / "Contents" / "MacOS" / exe
        target.write_bytes(b"")
        target.chmod(0o755)
    (app / "Contents" / "Info.plist").write_bytes((MACOS / "Info.plist").read_bytes())
    fake_bin, record = tmp_path / "bin", tmp_path / "record"
    fake_bin.mkdir()
    record.mkdir()
    for tool in ("pkgbuild", "productbuild"):
        (fake_bin / tool).write_text(RECORDER)
        (fake_bin / tool).chmod(0o755)
    out = tmp_path / "out"
    env = dict(os.environ, PATH=f"{fake_bin}:{os.environ['PATH']}", RECORD_DIR=str(record))
    result = subprocess.run(
        [str(MACOS / "build-pkg"), str(app), str(out)], env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"{out}/wgdesk-{VERSION}.pkg"

    pkgbuild = (record / "pkgbuild.log").read_text().splitlines()
    stage = Path(pkgbuild[1]).parent
    assert pkgbuild == [
        "--root", str(stage / "root"), "--identifier", "org.wgdesk.pkg", "--version", VERSION,
        "--install-location", "/", "--scripts", str(MACOS / "scripts"), str(stage / "wgdesk-component.pkg"),
    ]  # fmt: skip
    assert (record / "productbuild.log").read_text().splitlines() == [
        "--distribution", str(stage / "Distribution.xml"), "--package-path", str(stage),
        f"{out}/wgdesk-{VERSION}.pkg",
    ]  # fmt: skip
    payload = set((record / "payload.txt").read_text().splitlines())  # paths have spaces
    daemon = plistlib.loads((record / "daemon.plist").read_bytes())
    assert "." + DAEMON in payload
    for program in daemon["ProgramArguments"]:
        assert "." + program in payload, f"the LaunchDaemon runs {program}, a file of the payload"
    assert {f"./Applications/wgdesk.app/Contents/MacOS/{e}" for e in EXECUTABLES} <= payload
    assert not stage.exists(), "the staging directory is removed"


# -- Windows ------------------------------------------------------------------------------------


def iss_sections() -> dict[str, list[str]]:
    sections: dict[str, list[str]] = {}
    current = ""
    for raw in (WINDOWS / "wgdesk.iss").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(";"):
            continue
        if re.fullmatch(r"\[\w+\]", line):
            current = line[1:-1]
            sections[current] = []
        elif current:
            sections[current].append(line)
    return sections


def iss_entries(section: str) -> list[dict[str, str]]:
    """`Name: value; Name: "value"` lines as dicts (Inno Setup's quoting: "" is a literal quote)."""
    entries = []
    for line in iss_sections()[section]:
        fields = {}
        for m in re.finditer(r'(\w+):\s*("(?:[^"]|"")*"|[^;]*)', line):
            value = m.group(2).strip()
            if value.startswith('"'):
                value = value[1:-1].replace('""', '"')
            fields[m.group(1)] = value
        entries.append(fields)
    return entries


def test_iss_installs_bundle_and_wintun() -> None:
    files = iss_entries("Files")
    sources = [f["Source"] for f in files]
    assert "{#BundleDir}\\*" in sources
    assert "wintun\\bin\\amd64\\wintun.dll" in sources
    assert '#define BundleDir "..\\..\\dist\\wgdesk"' in (WINDOWS / "wgdesk.iss").read_text()
    fetch = (WINDOWS / "fetch-wintun.ps1").read_text()
    assert re.search(r"\$Sha256 = '[0-9a-f]{64}'", fetch)
    assert "'wintun\\bin\\amd64'" in fetch and "Get-AuthenticodeSignature" in fetch


def test_iss_service_and_group() -> None:
    run = [e["Parameters"] for e in iss_entries("Run") if e["Filename"] == "{sys}\\sc.exe"]
    create = next(p for p in run if p.startswith("create "))
    args = shlex.split(create.replace("{#ServiceName}", "wgdesk-helper"))
    assert args[:2] == ["create", "wgdesk-helper"]
    assert args[args.index("binPath=") + 1] == '"{app}\\wgdesk-helper.exe"'
    assert args[args.index("start=") + 1] == "auto"
    assert "start {#ServiceName}" in run
    uninstall = [e["Parameters"] for e in iss_entries("UninstallRun")]
    # the helper stops the service and waits for its process, removes what it left (WFP objects, the
    # Wintun driver), then the service goes
    assert uninstall[:2] == ["--uninstall", "delete {#ServiceName}"]
    net = [e["Parameters"] for e in iss_entries("Run") if e["Filename"] == "{sys}\\net.exe"]
    assert net[0].startswith("localgroup wgdesk /add")


def test_iss_file_association_is_open_with_only() -> None:
    reg = iss_entries("Registry")
    keys = {(e["Subkey"], e["ValueName"]): e["ValueData"] for e in reg}
    assert ("Software\\Classes\\.conf\\OpenWithProgids", "wgdesk.conf") in keys
    assert ("Software\\Classes\\.conf", "") not in keys, "would make wgdesk the default for every .conf"
    assert keys[("Software\\Classes\\wgdesk.conf\\shell\\open\\command", "")] == '"{app}\\wgdesk.exe" "%1"'


@pytest.mark.slow
def test_iss_references_executables_of_the_bundle(bundle: Bundle) -> None:
    text = (WINDOWS / "wgdesk.iss").read_text().replace("{#ServiceName}", "wgdesk-helper")
    referenced = set(re.findall(r"\{app\}\\([\w-]+)\.exe", text))
    assert referenced == {"wgdesk", "wgdesk-helper"}
    assert referenced <= set(bundle.executables())


def test_iss_and_spec_icon() -> None:
    """SetupIconFile (and build.spec's EXE icon) is an .ico with the sizes Windows asks for."""
    import struct

    [setup] = [line.split("=", 1)[1] for line in iss_sections()["Setup"] if line.startswith("SetupIconFile=")]
    ico = (WINDOWS / setup).read_bytes()
    reserved, kind, count = struct.unpack_from("<HHH", ico)
    assert (reserved, kind) == (0, 1)
    sizes = {ico[6 + 16 * i] or 256 for i in range(count)}
    assert {16, 32, 48, 256} <= sizes
    assert (
        'WINDOWS_ICON = ROOT / "installers" / "windows" / "wgdesk.ico"' in (ROOT / "build.spec").read_text()
    )


def test_ico_is_rendered_by_qt_and_decodes_at_every_size(tmp_path: Path) -> None:
    """installers/icons.py makes wgdesk.ico (no ImageMagick): Qt's own ICO reader finds every size, each
    transparent in the corner and opaque in the middle; the committed icon is PNG entries of the sizes its
    directory declares, as the script writes them."""
    import struct

    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtGui import QGuiApplication, QImageReader

    from installers.icons import ico

    _app = QGuiApplication.instance() or QGuiApplication([])
    path = tmp_path / "wgdesk.ico"
    path.write_bytes(ico(ROOT / "resources" / "icons" / "wgdesk.svg", [16, 32, 48, 64, 256]))
    reader = QImageReader(str(path))
    assert reader.format() == b"ico" and reader.imageCount() == 5
    seen = []
    for index in range(5):
        assert reader.jumpToImage(index)
        image = reader.read()
        seen.append(image.width())
        assert image.height() == image.width()
        assert image.pixelColor(0, 0).alpha() == 0
        assert image.pixelColor(image.width() // 2, image.height() // 2).alpha() == 255
    assert seen == [16, 32, 48, 64, 256]
    with pytest.raises(ValueError, match=r"1\.\.256"):
        ico(ROOT / "resources" / "icons" / "wgdesk.svg", [512])

    committed = (WINDOWS / "wgdesk.ico").read_bytes()
    count = struct.unpack_from("<H", committed, 4)[0]
    for i in range(count):
        side, _, _, _, _, bits, length, offset = struct.unpack_from("<BBBBHHII", committed, 6 + 16 * i)
        data = committed[offset : offset + length]
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and bits == 32
        assert struct.unpack(">II", data[16:24]) == ((side or 256), (side or 256))


def test_icns_elements_are_pngs_of_the_declared_sizes() -> None:
    import struct

    data = (MACOS / "wgdesk.icns").read_bytes()
    assert data[:4] == b"icns" and struct.unpack(">I", data[4:8])[0] == len(data)
    sizes, offset = {}, 8
    while offset < len(data):
        kind, length = data[offset : offset + 4], struct.unpack(">I", data[offset + 4 : offset + 8])[0]
        png = data[offset + 8 : offset + length]
        assert png[:8] == b"\x89PNG\r\n\x1a\n", kind
        sizes[kind] = struct.unpack(">II", png[16:24])  # IHDR width, height
        offset += length
    assert sizes == {b"ic07": (128, 128), b"ic08": (256, 256), b"ic09": (512, 512), b"ic10": (1024, 1024)}
    assert 'icns = ROOT / "installers" / "macos" / "wgdesk.icns"' in (ROOT / "build.spec").read_text()
