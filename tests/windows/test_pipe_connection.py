"""The control pipe as the helper's Listener/Connection, and who is at the other end as a
PeerIdentity — against a fake of pywin32 whose overlapped operations complete, time out or fail as
each test scripts: timeouts cancel and wait, a gone client reads as EOF, writes loop over partial
completions, the next pipe instance exists before a client is handed over."""

from __future__ import annotations

import pytest

from tests.windows.fake_windows import GROUP, USER, FakeClient, FakeWin32
from wgdesk.platforms.interface import EndpointInUse
from wgdesk.platforms.windows import pipes
from wgdesk.platforms.windows.identity import WindowsIdentity, sid_id
from wgdesk.platforms.windows.pipe_connection import (
    ERROR_BROKEN_PIPE,
    WAIT_TIMEOUT,
    PipeConnection,
    PipeControlEndpoint,
)


def endpoint() -> tuple[PipeControlEndpoint, FakeWin32, WindowsIdentity]:
    fake = FakeWin32()
    identity = WindowsIdentity(fake, fake, fake)
    return PipeControlEndpoint(identity, fake.bundle()), fake, identity


def test_bind_creates_the_first_instance_for_the_wgdesk_group() -> None:
    ep, fake, identity = endpoint()
    group = identity.group_id("wgdesk")
    assert group == sid_id(GROUP) and identity.group_id("nobody") is None
    ep.bind(ep.default_address(), group, open_to_all=False)
    ((_, name, mode, sddl),) = [c for c in fake.calls if c[0] == "CreateNamedPipe"]
    assert name == pipes.CONTROL_PIPE and mode & pipes.FILE_FLAG_FIRST_PIPE_INSTANCE
    assert sddl == pipes.control_sddl(GROUP, False)
    with pytest.raises(PermissionError):
        ep.bind(r"\\.\pipe\elsewhere", group, False)


def test_bind_when_another_process_owns_the_name() -> None:
    ep, fake, _ = endpoint()
    fake.create_error = 5
    with pytest.raises(EndpointInUse):
        ep.bind(ep.default_address(), None, False)


def test_accept_times_out_cancelling_then_hands_over_with_the_next_instance_ready() -> None:
    ep, fake, _ = endpoint()
    listener = ep.bind(ep.default_address(), None, False)
    fake.waits.append(WAIT_TIMEOUT)
    with pytest.raises(TimeoutError):
        listener.accept()
    assert ("CancelIo", "pipe1") in fake.calls and ("GetOverlappedResult", True) in fake.calls
    connection = listener.accept()
    assert connection.handle == "pipe1" and listener.pending == "pipe2"
    second = [c for c in fake.calls if c[0] == "CreateNamedPipe"][1]
    assert not second[2] & pipes.FILE_FLAG_FIRST_PIPE_INSTANCE
    assert ("Wait", 500) in fake.calls
    listener.close()
    with pytest.raises(OSError):
        listener.accept()


def test_connection_reads_writes_times_out_and_sees_the_client_go() -> None:
    fake = FakeWin32()
    connection = PipeConnection("pipe1", fake.bundle())
    fake.incoming.extend([b"list\n", ERROR_BROKEN_PIPE])
    connection.settimeout(2.0)
    assert connection.recv(4096) == b"list\n"
    assert ("Wait", 2000) in fake.calls
    assert connection.recv(4096) == b""
    fake.incoming.append(b"late")
    fake.waits.append(WAIT_TIMEOUT)
    with pytest.raises(TimeoutError):
        connection.recv(16)
    assert fake.calls[-2:] == [("CancelIo", "pipe1"), ("GetOverlappedResult", True)]
    fake.write_chunk = 4
    connection.sendall(b"0123456789")
    assert fake.written == [b"0123", b"4567", b"89"]
    fake.write_error = 232
    with pytest.raises(BrokenPipeError):
        connection.sendall(b"x")
    connection.close()
    assert ("CloseHandle", "pipe1") in fake.calls


def test_peer_identity_from_the_token() -> None:
    ep, fake, identity = endpoint()
    group = identity.group_id("wgdesk")
    who = ep.peer(PipeConnection("pipe1", fake.bundle()))
    assert (who.pid, who.uid) == (777, sid_id(USER)) and who.member_of(group)
    assert fake.calls[-1] == ("RevertToSelf",)
    fake.groups = [(pipes.ADMINISTRATORS_SID, pipes.SE_GROUP_ENABLED)]
    assert ep.peer(PipeConnection("pipe1", fake.bundle())).uid == 0
    assert identity.sid_of(group) == GROUP
    with pytest.raises(TypeError):
        ep.peer(object())


def test_sid_ids_are_stable_nonzero_and_refuse_non_sids() -> None:
    assert sid_id(USER) == sid_id(USER) != sid_id(GROUP)
    assert 0 < sid_id(USER) <= 2**62
    with pytest.raises(ValueError):
        sid_id("root")


def test_helper_connects_to_an_engines_uapi_pipe() -> None:
    from wgdesk.platforms.windows.pipe_connection import PipeUapiEndpoints

    fake = FakeClient()
    endpoints = PipeUapiEndpoints(fake.bundle())
    connection = endpoints.connect("wg-office", 2.5)
    path = r"\\.\pipe\ProtectedPrefix\Administrators\WireGuard\wg-office"
    assert fake.calls == [
        ("WaitNamedPipe", path, 2500),
        ("CreateFile", path, 0xC0000000, 0, 3, pipes.FILE_FLAG_OVERLAPPED),
    ]
    assert connection.handle == "client" and connection.reader.timeout == connection.writer.timeout == 2.5
    with pytest.raises(FileNotFoundError):
        PipeUapiEndpoints(FakeClient(missing=True).bundle()).connect("wg-office", 1)
    endpoints.remove(path)  # nothing to remove
