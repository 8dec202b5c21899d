"""``installers/macos/build-pkg`` with ``pkgbuild`` and ``productbuild`` replaced by a recorder (they
exist only on a Mac): the exact argv of both, signing included, and the staged payload as pkgbuild
would take it — each path with its mode, the LaunchDaemon equal to the backend's, every program it
runs shipped, the app's Info.plist the one in the tree. The .app is a stand-in laid out as
PyInstaller's BUNDLE lays it out (empty executables); no real .app or .pkg has been built.
``tests/packaging/test_other_platforms.py`` (run by the lead) does the same on the real bundle."""

from __future__ import annotations

import os
import plistlib
import subprocess
import tomllib
from pathlib import Path

import pytest

from wgdesk.platforms.darwin import service

ROOT = Path(__file__).resolve().parents[2]
MACOS = ROOT / "installers" / "macos"
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
EXECUTABLES = ("wgdesk", "wgdeskctl", "wgdesk-helper", "wgdesk-engine")

FAKE = """#!/bin/sh
# stands in for pkgbuild/productbuild: argv one per line; pkgbuild also lists its --root with modes
# and keeps the LaunchDaemon and the app's Info.plist; both create their output file (the last argument)
tool=$(basename "$0")
for a in "$@"; do printf '%s\\n' "$a"; done >"$RECORD/$tool.argv"
if [ "$tool" = pkgbuild ]; then
  root=$2
  (cd "$root" && find . -mindepth 1 -exec stat -c '%a %n' {} + | sort -k2) >"$RECORD/payload"
  cp "$root/Library/LaunchDaemons/org.wgdesk.helper.plist" "$RECORD/daemon.plist"
  cp "$root/Applications/wgdesk.app/Contents/Info.plist" "$RECORD/Info.plist"
fi
for last in "$@"; do :; done
: >"$last"
"""


def build(tmp_path: Path, sign: str | None = None) -> tuple[Path, Path, subprocess.CompletedProcess[str]]:
    app = tmp_path / "dist" / "wgdesk.app"
    (app / "Contents" / "MacOS").mkdir(parents=True)
    (app / "Contents" / "Info.plist").write_bytes((MACOS / "Info.plist").read_bytes())
    for exe in EXECUTABLES:
        (app / "Contents" / "MacOS" / exe).write_bytes(b"")
        (app / "Contents" / "MacOS" / exe).chmod(0o755)
    tools, record, out = tmp_path / "bin", tmp_path / "record", tmp_path / "out"
    tools.mkdir()
    record.mkdir()
    for tool in ("pkgbuild", "productbuild"):
        (tools / tool).write_text(FAKE)
        (tools / tool).chmod(0o755)
    env = dict(os.environ, PATH=f"{tools}:{os.environ['PATH']}", RECORD=str(record))
    env.pop("WGDESK_SIGN_IDENTITY", None)
    if sign:
        env["WGDESK_SIGN_IDENTITY"] = sign
    proc = subprocess.run(
        [str(MACOS / "build-pkg"), str(app), str(out)], env=env, capture_output=True, text=True, timeout=120
    )
    return record, out, proc


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def test_build_pkg_argv_and_payload(tmp_path: Path) -> None:
    record, out, proc = build(tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"{out}/wgdesk-{VERSION}.pkg"
    pkgbuild = lines(record / "pkgbuild.argv")
    stage = Path(pkgbuild[1]).parent
    assert pkgbuild == [
        "--root", str(stage / "root"), "--identifier", "org.wgdesk.pkg", "--version", VERSION,
        "--install-location", "/", "--scripts", str(MACOS / "scripts"), str(stage / "wgdesk-component.pkg"),
    ]  # fmt: skip
    assert lines(record / "productbuild.argv") == [
        "--distribution", str(stage / "Distribution.xml"), "--package-path", str(stage),
        f"{out}/wgdesk-{VERSION}.pkg",
    ]  # fmt: skip
    assert not stage.exists(), "the staging directory is removed"

    payload = dict(reversed(line.split(" ", 1)) for line in lines(record / "payload"))
    support = "./Library/Application Support/wgdesk"
    assert payload[f"{support}/uninstall"] == payload[f"{support}/boot-block"] == "755"
    assert payload["./Library/LaunchDaemons/org.wgdesk.helper.plist"] == "644"
    for exe in EXECUTABLES:
        assert payload[f"./Applications/wgdesk.app/Contents/MacOS/{exe}"] == "755"
    # nothing else at the top of the payload: the .pkg installs the app, the daemon, our support dir
    tops = {p.split("/")[1] for p in payload}
    assert tops == {"Applications", "Library"}
    assert {p for p in payload if p.count("/") == 2} == {
        "./Applications/wgdesk.app",
        "./Library/LaunchDaemons",
        "./Library/Application Support",
    }

    daemon = plistlib.loads((record / "daemon.plist").read_bytes())
    assert daemon == service.launch_daemon()
    for program in daemon["ProgramArguments"]:
        assert "." + program in payload, f"the LaunchDaemon runs {program}: not in the payload"
    assert plistlib.loads((record / "Info.plist").read_bytes()) == plistlib.loads(
        (MACOS / "Info.plist").read_bytes()
    )


def test_build_pkg_signs_the_product_when_given_an_identity(tmp_path: Path) -> None:
    record, out, proc = build(tmp_path, sign="Developer ID Installer: Example (ABCDE12345)")
    assert proc.returncode == 0, proc.stderr
    argv = lines(record / "productbuild.argv")
    assert argv[4:] == [
        "--sign",
        "Developer ID Installer: Example (ABCDE12345)",
        f"{out}/wgdesk-{VERSION}.pkg",
    ]


@pytest.mark.parametrize("missing", EXECUTABLES)
def test_build_pkg_refuses_an_app_without_an_executable(tmp_path: Path, missing: str) -> None:
    app = tmp_path / "wgdesk.app" / "Contents" / "MacOS"
    app.mkdir(parents=True)
    for exe in EXECUTABLES:
        if exe != missing:
            (app / exe).write_bytes(b"")
            (app / exe).chmod(0o755)
    proc = subprocess.run(
        [str(MACOS / "build-pkg"), str(app.parents[1]), str(tmp_path / "out")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 1 and f"{missing} is missing" in proc.stderr
    assert not (tmp_path / "out").exists()
