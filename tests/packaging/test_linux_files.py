"""The Linux integration files the .deb ships, checked with the freedesktop tools (no bundle needed).

installers/linux/build-deb packages them from resources/ (the desktop entry, unit and helper settings
are kept there by the GUI and helper code's owners). No polkit policy: the helper authorises by group
membership, and starting its service is systemd's own polkit action.
"""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.packaging.artifacts import ROOT

LINUX = ROOT / "installers" / "linux"
MIME_TYPE = "application/x-wireguard-config"


def pick(name: str) -> Path:
    """The file build-deb packages for `name`."""
    return ROOT / "resources" / name


def policies() -> list[Path]:
    return sorted((ROOT / "resources").glob("*.policy"))


def desktop_entry(path: Path) -> configparser.SectionProxy:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(path, encoding="utf-8")
    return parser["Desktop Entry"]


def test_desktop_file_validates() -> None:
    path = pick("wgdesk.desktop")
    result = subprocess.run(["desktop-file-validate", str(path)], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.strip() == "", result.stdout + result.stderr


def test_desktop_file_opens_wireguard_configs() -> None:
    entry = desktop_entry(pick("wgdesk.desktop"))
    assert entry["Type"] == "Application"
    exec_argv = entry["Exec"].split()
    assert exec_argv[0] == "wgdesk" and ("%F" in exec_argv or "%U" in exec_argv), entry["Exec"]
    assert MIME_TYPE in entry["MimeType"].split(";")
    assert entry["Icon"] == "wgdesk"
    assert (ROOT / "resources" / "icons" / "wgdesk.svg").is_file(), "the hicolor icon is packaged from here"


def test_systemd_unit_runs_the_bundled_helper() -> None:
    unit = configparser.ConfigParser(interpolation=None, strict=False)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read(pick("wgdesk-helper.service"), encoding="utf-8")
    exec_start = unit["Service"]["ExecStart"].split()[0].lstrip("-@+!:")
    assert exec_start in ("/opt/wgdesk/wgdesk-helper", "/usr/bin/wgdesk-helper")
    assert "multi-user.target" in unit["Install"]["WantedBy"].split()


def test_no_polkit_policy_is_shipped() -> None:
    # the actions it defined were used by nothing (issue 13): a policy that grants nothing misleads
    assert policies() == []


@pytest.mark.parametrize("script", ["postinst", "prerm", "postrm"])
def test_maintainer_scripts_are_posix_sh(script: str) -> None:
    path = LINUX / "debian" / script
    assert path.read_text().startswith("#!/bin/sh\n")
    assert path.stat().st_mode & 0o111
    result = subprocess.run(["sh", "-n", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def fake_bundle(root: Path) -> Path:
    """A bundle-shaped directory whose four executables are copies of /bin/true (real ELF files)."""
    bundle = root / "wgdesk"
    (bundle / "_internal").mkdir(parents=True)
    (bundle / "_internal" / "base_library.zip").write_bytes(b"PK\x05\x06" + bytes(18))
    for exe in ("wgdesk", "wgdeskctl", "wgdesk-helper", "wgdesk-engine"):
        shutil.copy2("/bin/true", bundle / exe)
    return bundle


def build(bundle: Path, out: Path, **env: str) -> Path:
    result = subprocess.run(
        [str(LINUX / "build-deb"), str(bundle), str(out)],
        capture_output=True, text=True, env={**os.environ, "WGDESK_DEB_COMPRESSION": "zstd", **env},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return Path(result.stdout.split()[-1])


def test_same_bundle_same_deb(tmp_path: Path) -> None:
    bundle = fake_bundle(tmp_path)
    # build-deb's default epoch is the last commit's time: pinned, so that a commit made between the two
    # builds (a shared working tree) cannot tell them apart; the wall clock still can.
    epoch = str(int(time.time()) - 86400)
    first = build(bundle, tmp_path / "a", SOURCE_DATE_EPOCH=epoch)
    time.sleep(1.1)  # a build that depended on the clock would now differ
    second = build(bundle, tmp_path / "b", SOURCE_DATE_EPOCH=epoch)
    assert first.name == second.name
    assert first.read_bytes() == second.read_bytes()


def test_build_deb_refuses_a_bundle_without_all_four_executables(tmp_path: Path) -> None:
    bundle = fake_bundle(tmp_path)
    (bundle / "wgdesk-helper").unlink()
    result = subprocess.run([str(LINUX / "build-deb"), str(bundle), str(tmp_path / "out")],
                            capture_output=True, text=True)  # fmt: skip
    assert result.returncode != 0
    assert "wgdesk-helper is missing" in result.stderr
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())
