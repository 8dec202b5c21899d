"""Helper authentication on macOS (``LOCAL_PEERCRED`` xucred, ``LOCAL_PEERPID``, full group
membership), the engine's sockets and start, the LaunchDaemon, DNS input validation, and the data
path a Mac runs. Byte layouts are built by hand from <sys/ucred.h> and <sys/un.h>."""

from __future__ import annotations

import plistlib
import struct
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from wgdesk.fastpath import choose
from wgdesk.platforms.darwin import dns, peercred, service
from wgdesk.platforms.errors import PlatformError

ROOT = Path(__file__).resolve().parents[2]


def xucred(uid: int, groups: Sequence[int], version: int = 0, pid: int = 0) -> bytes:
    """struct xucred on LP64: u_int, uid_t, short + 2 padding, gid_t[16], 4 padding, 8-byte union."""
    padded = list(groups) + [0] * (16 - len(groups))
    return (
        struct.pack("=IIh", version, uid, len(groups))
        + b"\0\0"
        + struct.pack("=16I", *padded)
        + b"\0" * 4
        + struct.pack("=q", pid)
    )


def test_xucred_layout_and_parse() -> None:
    raw = xucred(501, [20, 12, 61, 79])
    assert len(raw) == peercred.XUCRED.size == 88
    assert peercred.parse_xucred(raw) == (501, (20, 12, 61, 79))
    assert peercred.LOCAL_PEERCRED == 1 and peercred.LOCAL_PEERPID == 2 and peercred.SOL_LOCAL == 0


@pytest.mark.parametrize(
    "raw",
    [
        xucred(501, [20], version=1),
        struct.pack("=IIh", 0, 501, 0) + bytes(82),
        struct.pack("=IIh", 0, 501, 17) + bytes(82),
        b"\0" * 10,
    ],
)
def test_xucred_refuses_what_the_kernel_never_sends(raw: bytes) -> None:
    with pytest.raises(PlatformError):
        peercred.parse_xucred(raw)


def test_first_group_is_the_effective_gid() -> None:
    who = peercred.identity(4242, 501, (20, 12, 80))
    assert (who.pid, who.uid, who.gid, who.groups) == (4242, 501, 20, (12, 80))
    assert who.member_of(80) and who.member_of(20) and not who.member_of(33)


def test_a_full_group_list_is_completed_from_the_account_database() -> None:
    """16 groups: the kernel may have cut the list; membership is completed for that uid."""
    groups = tuple(range(100, 116))
    asked = []

    def grouplist(name: str, gid: int) -> list[int]:
        asked.append((name, gid))
        return [*range(100, 116), 700]

    who = peercred.identity(1, 0, groups, grouplist)  # uid 0 exists on every machine
    assert asked == [("root", 100)]
    assert who.member_of(700)
    short = peercred.identity(1, 0, groups[:15], grouplist)
    assert not short.member_of(700) and len(asked) == 1  # not full: the kernel's list is complete


class FakePeer:
    """A connected socket as `peer_credentials` reads it: getsockopt at SOL_LOCAL."""

    def __init__(self, cred: bytes, pid: int) -> None:
        self.options = {peercred.LOCAL_PEERCRED: cred, peercred.LOCAL_PEERPID: struct.pack("=i", pid)}

    def getsockopt(self, level: int, option: int, size: int) -> bytes:
        assert level == peercred.SOL_LOCAL
        return self.options[option][:size]


def test_peer_credentials_reads_both_options() -> None:
    who = peercred.peer_credentials(FakePeer(xucred(501, [20, 80]), 777))  # type: ignore[arg-type]
    assert (who.pid, who.uid, who.gid, who.groups) == (777, 501, 20, (80,))


def test_the_installed_launch_daemon_is_the_backends() -> None:
    """The .pkg installs ``installers/macos/org.wgdesk.helper.plist``: exactly `service.launch_daemon`."""
    installed = plistlib.loads((ROOT / "installers" / "macos" / "org.wgdesk.helper.plist").read_bytes())
    assert installed == service.launch_daemon()
    assert installed["ProgramArguments"] == [
        "/Library/Application Support/wgdesk/boot-block",  # test_bootblock
        "/Applications/wgdesk.app/Contents/MacOS/wgdesk-helper",
    ]
    assert installed["RunAtLoad"] is True and installed["KeepAlive"] is True


@pytest.mark.parametrize(
    ("servers", "search"),
    [
        (["10.0.0.1\nremove State:/Network/Global/IPv4"], []),
        (["10.0.0.1"], ["corp.example\nset State:/Network/Global/IPv4"]),
        (["10.0.0.1"], ["a b"]),
        (["not-an-ip"], []),
    ],
)
def test_scutil_scripts_refuse_injection(servers: list[str], search: list[str]) -> None:
    with pytest.raises(PlatformError):
        dns.set_script("State:/Network/Service/X/DNS", servers, search)


def test_restore_script_keeps_only_values_scutil_reads_back() -> None:
    script = dns.restore_script(
        "K", {"ServerAddresses": ["1.1.1.1", "bad value"], "Odd Key": "x", "DomainName": "a\nb"}
    )
    assert script == "d.init\nd.add ServerAddresses * 1.1.1.1\nset K\nquit\n"
    assert dns.restore_script("K", None) == "remove K\nquit\n"
    with pytest.raises(PlatformError):
        dns.service_key("../../Global/IPv4")


def test_a_mac_runs_the_portable_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "platform", "darwin")
    assert choose({}).portable
    monkeypatch.setattr(sys, "platform", "linux")
    assert not choose({}).portable and choose({"WGDESK_PORTABLE": "1"}).portable


def test_state_dir_on_a_mac() -> None:
    from wgdesk.platforms.darwin import DarwinPlatform

    assert DarwinPlatform().options.state_dir == Path("/var/run/wgdesk")


def test_launchd_hosts_the_helper_in_the_foreground_stopped_by_signals() -> None:
    from wgdesk.platforms.darwin.service import DarwinService

    calls: list[tuple[list[str], object]] = []

    def run(argv: list[str], stop_hook: object) -> int:
        calls.append((argv, stop_hook))
        return 3

    assert DarwinService().host(run, ["--log-level", "debug"]) == 3  # the helper's status is the process's
    assert calls == [(["--log-level", "debug"], None)]  # no stop hook: SIGTERM from launchd stops it


def test_macos_helper_files_are_under_var_run_and_library_application_support() -> None:
    """The helper takes its default directories from the service (`wgdesk.helper.main`), so macOS's
    are these, not Linux's /run and /var/lib."""
    from wgdesk.platforms.darwin.service import DarwinService

    paths = DarwinService().paths
    assert (paths.settings, paths.state, paths.persistent, paths.lockdown_file) == (
        Path("/etc/wgdesk/helper.toml"),
        Path("/var/run/wgdesk"),
        Path("/Library/Application Support/wgdesk"),
        Path("/Library/Application Support/wgdesk/lockdown.json"),
    )
