"""The macOS installer's scripts as data (no Mac here to run them): they parse, and they name what
the backend uses — the engines' account the helper looks up, the pf anchors and the token file the
kill switch writes — so the two cannot drift apart unnoticed."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from wgdesk.platforms.darwin import STATE_DIR, pf

MACOS = Path(__file__).resolve().parents[2] / "installers" / "macos"


@pytest.mark.parametrize("script", ["scripts/preinstall", "scripts/postinstall", "uninstall", "boot-block"])
def test_scripts_parse_and_are_executable(script: str) -> None:
    path = MACOS / script
    assert path.stat().st_mode & 0o111
    assert subprocess.run(["sh", "-n", str(path)]).returncode == 0


def test_postinstall_creates_the_engines_account_the_helper_looks_up() -> None:
    text = (MACOS / "scripts" / "postinstall").read_text()
    helper_settings = (Path(__file__).resolve().parents[2] / "wgdesk" / "helper" / "settings.py").read_text()
    assert 'account_ids("wgdesk-engine")' in helper_settings
    for key in ("UniqueID", "PrimaryGroupID", "UserShell /usr/bin/false", "IsHidden 1"):
        assert f"/Users/wgdesk-engine {key}" in text
    assert "user-created-by-package" in text


def test_uninstall_releases_what_the_kill_switch_holds() -> None:
    text = (MACOS / "uninstall").read_text()
    assert pf.FAILSAFE in text and pf.KILL_SWITCH in text
    assert pf.GUARD in text
    assert f"{STATE_DIR}/pf-tokens" in text  # the file `pf.Pf` keeps its tokens in ("TOKEN ANCHOR" lines)
    assert "read -r token _" in text
    assert "user-created-by-package" in text and "dscl . -delete /Users/wgdesk-engine" in text


def test_build_pkg_ships_the_uninstall_script() -> None:
    text = (MACOS / "build-pkg").read_text()
    assert '"$HERE/uninstall" "$STAGE/root/Library/Application Support/wgdesk/uninstall"' in text


def test_boot_block_names_the_anchor_and_token_file_the_helper_uses() -> None:
    text = (MACOS / "boot-block").read_text()
    assert f'ANCHOR="{pf.KILL_SWITCH}"' in text
    assert "/var/run/wgdesk/pf-tokens" in text and Path("/var/run/wgdesk") == STATE_DIR
    assert f'RULES="${{WGDESK_BOOT_RULES:-{pf.BOOT_RULES}}}"' in text
