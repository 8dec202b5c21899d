"""The control pipe as the helper's Listener/Connection, and who is at the other end as a
PeerIdentity — against a fake of pywin32 whose overlapped operations complete, time out or fail as
each test scripts: timeouts cancel and wait, a gone client reads as EOF, writes loop over partial
completions, the next pipe instance exists before a client is handed over."""

from __future__ import annotations

from collections import deque
from typing import Any

import pytest

from wgdesk.platforms.interface import EndpointInUse
from wgdesk.platforms.windows import pipes
from wgdesk.platforms.windows.identity import WindowsIdentity, sid_id
from wgdesk.platforms.windows.pipe_connection import (
    ERROR_BROKEN_PIPE,
    ERROR_IO_PENDING,
    WAIT_TIMEOUT,
    PipeConnection,
    PipeControlEndpoint,
    Win32,
)

USER = "S-1-5-21-1004336348-1177238915-682003330-1001"
GROUP = "S-1-5-21-1004336348-1177238915-682003330-1013"


class Error(Exception):
    def __init__(self, winerror: int, strerror: str = "error") -> None:
        super().__init__(winerror, strerror)
        self.winerror = winerror
        self.strerror = strerror


class Overlapped:
    hEvent: Any = None
    result = 0


class FakeWin32:
    """All six pywin32 modules in one object; ``waits`` scripts WaitForSingleObject's answers."""

    TokenUser, TokenGroups = 1, 2
    SECURITY_ATTRIBUTES = type("SECURITY_ATTRIBUTES", (), {"SECURITY_DESCRIPTOR": None})
    OVERLAPPED = Overlapped
    error = Error

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.waits: deque[int] = deque()
        self.incoming: deque[bytes | int] = deque()
        self.written: list[bytes] = []
        self.write_chunk = 1 << 20
        self.write_error = 0
        self.create_error = 0
        self.handles = 0
        self.groups: list[tuple[str, int]] = [(GROUP, pipes.SE_GROUP_ENABLED)]

    def bundle(self) -> Win32:
        return Win32(self, self, self, self, self, self)

    # win32event
    def CreateEvent(self, *args: Any) -> str:
        return "event"

    def WaitForSingleObject(self, event: str, milliseconds: int) -> int:
        self.calls.append(("Wait", milliseconds))
        return self.waits.popleft() if self.waits else 0

    # win32pipe
    def CreateNamedPipe(self, name: str, open_mode: int, *rest: Any) -> str:
        self.calls.append(("CreateNamedPipe", name, open_mode, rest[-1].SECURITY_DESCRIPTOR))
        if self.create_error:
            raise Error(self.create_error)
        self.handles += 1
        return f"pipe{self.handles}"

    def ConnectNamedPipe(self, handle: str, overlapped: Overlapped) -> int:
        self.calls.append(("ConnectNamedPipe", handle))
        return ERROR_IO_PENDING

    def GetNamedPipeClientProcessId(self, handle: str) -> int:
        return 777

    def ImpersonateNamedPipeClient(self, handle: str) -> None:
        self.calls.append(("Impersonate", handle))

    # win32file
    def AllocateReadBuffer(self, size: int) -> bytearray:
        return bytearray(size)

    def ReadFile(self, handle: str, buffer: bytearray, overlapped: Overlapped) -> tuple[int, bytearray]:
        item = self.incoming.popleft()
        if isinstance(item, int):
            raise Error(item)
        buffer[: len(item)] = item
        overlapped.result = len(item)
        return ERROR_IO_PENDING, buffer

    def WriteFile(self, handle: str, data: bytes, overlapped: Overlapped) -> tuple[int, int]:
        if self.write_error:
            raise Error(self.write_error)
        chunk = data[: self.write_chunk]
        self.written.append(chunk)
        overlapped.result = len(chunk)
        return ERROR_IO_PENDING, len(chunk)

    def GetOverlappedResult(self, handle: str, overlapped: Overlapped, wait: bool) -> int:
        self.calls.append(("GetOverlappedResult", wait))
        return overlapped.result

    def CancelIo(self, handle: str) -> None:
        self.calls.append(("CancelIo", handle))

    # win32security
    def ConvertStringSecurityDescriptorToSecurityDescriptor(self, sddl: str, revision: int) -> str:
        return sddl

    def OpenThreadToken(self, *args: Any) -> str:
        return "token"

    def GetTokenInformation(self, token: str, kind: int) -> Any:
        return (USER, 0) if kind == self.TokenUser else list(self.groups)

    def RevertToSelf(self) -> None:
        self.calls.append(("RevertToSelf",))

    def ConvertSidToStringSid(self, sid: str) -> str:
        return sid

    def LookupAccountName(self, system: Any, name: str) -> tuple[str, str, int]:
        if name != "wgdesk":
            raise Error(1332)
        return GROUP, "HOST", 4

    # win32api
    def CloseHandle(self, handle: str) -> None:
        self.calls.append(("CloseHandle", handle))

    def GetCurrentThread(self) -> str:
        return "thread"


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


class FakeClient(FakeWin32):
    def __init__(self, missing: bool = False) -> None:
        super().__init__()
        self.missing = missing

    def WaitNamedPipe(self, path: str, milliseconds: int) -> None:
        self.calls.append(("WaitNamedPipe", path, milliseconds))
        if self.missing:
            raise Error(2)

    def CreateFile(
        self, path: str, access: int, share: int, sa: Any, how: int, flags: int, template: Any
    ) -> str:
        self.calls.append(("CreateFile", path, access, share, how, flags))
        return "client"


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
    assert connection.handle == "client" and connection.io.timeout == 2.5
    with pytest.raises(FileNotFoundError):
        PipeUapiEndpoints(FakeClient(missing=True).bundle()).connect("wg-office", 1)
    endpoints.remove(path)  # nothing to remove
