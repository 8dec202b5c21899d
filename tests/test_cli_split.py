"""`wgdeskctl exclude -- COMMAND` and `wgdeskctl excluded` without a helper, through the console script.

With the real helper (full tunnel, kill switch, refusals) they are tested in tests/helper/test_split.py.
"""

from __future__ import annotations

from pathlib import Path

from tests.test_cli import run


def test_exclude_needs_a_command(tmp_path: Path) -> None:
    for args in ((), ("--",)):
        r = run("--socket", str(tmp_path / "none.sock"), "exclude", *args)
        assert r.returncode == 2
        assert b"name the program to run outside the tunnel: wgdeskctl exclude -- COMMAND" in r.stderr


def test_exclude_of_an_unknown_command_asks_nobody(tmp_path: Path) -> None:
    r = run("--socket", str(tmp_path / "none.sock"), "exclude", "--", "wgdesk-no-such-program", "-x")
    assert r.returncode == 127
    assert r.stderr.decode() == "wgdeskctl exclude: wgdesk-no-such-program: command not found\n"


def test_exclude_without_the_helper_fails_and_runs_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    r = run("--socket", str(tmp_path / "none.sock"), "exclude", "--", "touch", str(marker))
    assert r.returncode == 1
    err = r.stderr.decode()
    assert err.startswith(
        "wgdeskctl exclude: cannot run touch outside the tunnel: the wgdesk helper is not running"
    )
    assert not marker.exists()


def test_excluded_without_the_helper(tmp_path: Path) -> None:
    r = run("--socket", str(tmp_path / "none.sock"), "excluded")
    assert r.returncode == 1 and b"the wgdesk helper is not running" in r.stderr


def test_exclude_passes_the_command_line_through_untouched(tmp_path: Path) -> None:
    # options after COMMAND belong to COMMAND, not to wgdeskctl (argparse REMAINDER)
    r = run("--socket", str(tmp_path / "none.sock"), "exclude", "touch", "--json", "--socket")
    assert r.returncode == 1 and b"cannot run touch outside the tunnel" in r.stderr


def test_include_needs_a_command_and_without_the_helper_runs_nothing(tmp_path: Path) -> None:
    sock = str(tmp_path / "none.sock")
    r = run("--socket", sock, "include", "--")
    assert r.returncode == 2
    assert b"name the program to run only through the tunnel: wgdeskctl include -- COMMAND" in r.stderr
    r = run("--socket", sock, "include", "--", "wgdesk-no-such-program")
    assert r.returncode == 127
    assert r.stderr.decode() == "wgdeskctl include: wgdesk-no-such-program: command not found\n"
    marker = tmp_path / "ran"
    r = run("--socket", sock, "include", "touch", "--json", str(marker))
    assert r.returncode == 1 and not marker.exists()
    assert r.stderr.decode().startswith(
        "wgdeskctl include: cannot run touch only through the tunnel: the wgdesk helper is not running"
    )
    r = run("--socket", sock, "included")
    assert r.returncode == 1 and b"wgdeskctl included: " in r.stderr
