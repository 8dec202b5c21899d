"""The engine's UDP sockets created as the socket account, so pf's ``user`` can match them
(`wgdesk.platforms.darwin.socketowner`).

This part is not faked: forking, becoming an account and handing sockets back over ``SCM_RIGHTS`` work
the same on Linux, and Linux records a socket's creator as pf does (``/proc/net/udp``'s uid column), so
the tests bind for real as ``nobody`` (root only) and read who the kernel says owns the port. Whether
macOS's pf then matches ``user`` as pf.conf(5) says has not been checked on a Mac."""

from __future__ import annotations

import errno
import os
import pwd
import socket
from pathlib import Path

import pytest

from wgdesk.platforms.darwin.engine import DarwinEngineHost
from wgdesk.platforms.darwin.socketowner import OwnerRecord, bind_as

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="binding as another account needs root")
NOBODY = pwd.getpwnam("nobody")


def kernel_owner(port: int, table: str) -> int | None:
    """The uid ``/proc/net/TABLE`` gives the socket bound to ``port`` (Linux's record of its creator)."""
    for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].rsplit(":", 1)[1], 16) == port:
            return int(fields[7])
    return None


class Notes:
    def __init__(self) -> None:
        self.warnings: list[str] = []

    def info(self, message: str, uid: int | None = None) -> None:
        pass

    def warning(self, message: str) -> None:
        self.warnings.append(message)

    def error(self, message: str) -> None:
        pass


def test_bind_as_makes_sockets_the_kernel_says_are_the_accounts() -> None:
    s4, s6 = bind_as(NOBODY.pw_uid, NOBODY.pw_gid, 0)
    try:
        port = s4.getsockname()[1]
        assert kernel_owner(port, "udp") == NOBODY.pw_uid
        if s6 is not None:
            assert s6.getsockname()[1] == port and s6.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY)
            assert kernel_owner(port, "udp6") == NOBODY.pw_uid
        # the parent (root) uses them: they are ordinary bound sockets
        s4.sendto(b"x", ("127.0.0.1", port))
        assert s4.recv(16) == b"x"
    finally:
        for s in (s4, s6):
            if s is not None:
                s.close()


def test_bind_as_reports_the_childs_errno() -> None:
    if int(Path("/proc/sys/net/ipv4/ip_unprivileged_port_start").read_text()) <= 999:
        pytest.skip("this host lets any account bind low ports")
    with pytest.raises(PermissionError):
        bind_as(NOBODY.pw_uid, NOBODY.pw_gid, 999)


def test_bind_udp_as_the_account_records_its_uid(tmp_path: Path) -> None:
    host = DarwinEngineHost(tmp_path, account="nobody")
    s4, s6, port = host.bind_udp(0, 0)
    try:
        assert s4 is not None and s4.getsockname()[1] == port
        assert kernel_owner(port, "udp") == NOBODY.pw_uid
        assert OwnerRecord(tmp_path).owner(port) == NOBODY.pw_uid
        assert (tmp_path / "engine-sockets").read_text() == f"{port} {NOBODY.pw_uid}\n"
    finally:
        for s in (s4, s6):
            if s is not None:
                s.close()


def test_without_the_account_root_makes_them_and_the_record_says_so(tmp_path: Path) -> None:
    notes = Notes()
    OwnerRecord(tmp_path).set(7, 250)
    host = DarwinEngineHost(tmp_path, account="no-such-account-wgdesk", notes=notes)
    s4, s6, port = host.bind_udp(0, 0)
    try:
        assert kernel_owner(port, "udp") == 0
        assert OwnerRecord(tmp_path).read() == {7: 250, port: 0}  # the kill switch: port alone
    finally:
        for s in (s4, s6):
            if s is not None:
                s.close()
    assert notes.warnings == []  # no account is not a failure to warn about (the .pkg makes it)


def test_a_port_the_account_may_not_bind_falls_back_to_root_and_warns(tmp_path: Path) -> None:
    if int(Path("/proc/sys/net/ipv4/ip_unprivileged_port_start").read_text()) <= 999:
        pytest.skip("this host lets any account bind low ports")
    notes = Notes()
    host = DarwinEngineHost(tmp_path, account="nobody", notes=notes)
    try:
        s4, s6, port = host.bind_udp(999, 0)
    except Exception as exc:  # port 999 in use here: nothing to learn
        pytest.skip(f"port 999 not free: {exc}")
    try:
        assert port == 999 and kernel_owner(999, "udp") == 0
        assert OwnerRecord(tmp_path).owner(999) == 0
        assert len(notes.warnings) == 1 and "any user" in notes.warnings[0]
    finally:
        for s in (s4, s6):
            if s is not None:
                s.close()


def test_the_newest_bind_of_a_port_replaces_its_owner(tmp_path: Path) -> None:
    record = OwnerRecord(tmp_path)
    record.set(51820, 0)
    record.set(51821, 250)
    record.set(51820, 250)
    assert record.read() == {51820: 250, 51821: 250}
    (tmp_path / "engine-sockets").write_text("garbage\n51822 x\n51823 7\n")
    assert record.read() == {51823: 7}  # unreadable lines are unknown owners: the port alone decides


def test_a_child_that_dies_without_answering_is_an_error_not_a_hang(monkeypatch: pytest.MonkeyPatch) -> None:
    from wgdesk.platforms.darwin import socketowner

    monkeypatch.setattr(socketowner, "_child", lambda *args: os._exit(3))
    with pytest.raises(OSError, match="without an answer"):
        bind_as(NOBODY.pw_uid, NOBODY.pw_gid, 0)


def test_an_unexpected_failure_in_the_child_comes_back_as_eio(monkeypatch: pytest.MonkeyPatch) -> None:
    from wgdesk.platforms.darwin import socketowner

    def broken(port: int) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(socketowner, "bind_pair", broken)
    with pytest.raises(OSError) as caught:
        bind_as(NOBODY.pw_uid, NOBODY.pw_gid, 0)
    assert caught.value.errno == errno.EIO
