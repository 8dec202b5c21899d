"""The helper's default places and its trust in a state file, as the Linux service gives them
(`wgdesk.platforms.linux.service`; macOS shares the UNIX rule): the same values and checks the helper
had before they moved behind `Service` (``paths``, ``prepare_directory``, ``private_file``)."""

from __future__ import annotations

import os
from pathlib import Path

from wgdesk.helper.main import build_parser
from wgdesk.helper.settings import Settings
from wgdesk.platforms.linux.service import LinuxService


def test_linux_keeps_run_var_lib_and_etc() -> None:
    paths = LinuxService().paths
    assert (paths.settings, paths.state, paths.persistent, paths.lockdown_file) == (
        Path("/etc/wgdesk/helper.toml"),
        Path("/run/wgdesk"),
        Path("/var/lib/wgdesk"),
        Path("/var/lib/wgdesk/lockdown.json"),
    )
    args = build_parser().parse_args([])
    assert (args.state_dir, args.config) == (Path("/run/wgdesk"), Path("/etc/wgdesk/helper.toml"))
    assert (Settings().persistent_dir, Settings().lockdown_file) == (
        "/var/lib/wgdesk",
        "/var/lib/wgdesk/lockdown.json",
    )


def test_prepare_directory_creates_it_0755_with_its_parents(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b"
    umask = os.umask(0o022)  # the helper's
    try:
        LinuxService().prepare_directory(target)
        LinuxService().prepare_directory(target)  # an existing one is fine
    finally:
        os.umask(umask)
    assert target.is_dir() and target.stat().st_mode & 0o777 == 0o755


def test_a_state_file_is_private_only_when_roots_and_not_writable_by_others(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_text("{}")
    service = LinuxService()

    def verdict() -> str | None:
        fd = os.open(path, os.O_RDONLY)
        try:
            return service.private_file(fd)
        finally:
            os.close(fd)

    os.chown(path, 0, 0)
    for mode, trusted in ((0o600, True), (0o644, True), (0o620, False), (0o602, False)):
        path.chmod(mode)
        assert (verdict() is None) == trusted, oct(mode)
    path.chmod(0o600)
    os.chown(path, 65534, 0)  # nobody's
    assert verdict() == "it is not root's or is writable by others"
