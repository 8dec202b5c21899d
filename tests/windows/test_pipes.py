"""Named pipes: the UAPI path and descriptor wireguard-go uses (so wg.exe can talk to a wgdesk engine),
the control pipe's flags and descriptor, SID validation before anything goes into SDDL, and the
caller's identity read from its token while impersonating — against fakes of pywin32's modules."""

from __future__ import annotations

from typing import Any

import pytest

from wgdesk.platforms.windows import pipes


def test_uapi_pipe_is_wireguard_gos_path_and_descriptor() -> None:
    spec = pipes.uapi_pipe("wg-office", first_instance=True)
    assert spec.name == r"\\.\pipe\ProtectedPrefix\Administrators\WireGuard\wg-office"
    assert spec.sddl == "O:SYD:P(A;;GA;;;SY)(A;;GA;;;BA)S:(ML;;NWNRNX;;;HI)"
    for bad in ("", "a\\b", "..\\x", "wg office", "x" * 33, "wg0\0"):
        with pytest.raises(ValueError):
            pipes.uapi_path(bad)


def test_control_pipe_rejects_remote_clients_and_is_ours_alone() -> None:
    name, open_mode, pipe_mode, instances, out_size, in_size, timeout = pipes.control_pipe(
        "S-1-5-21-1004336348-1177238915-682003330-1013", open_to_all=False, first_instance=True
    ).argv()
    assert name == r"\\.\pipe\wgdesk-helper"
    assert pipe_mode & pipes.PIPE_REJECT_REMOTE_CLIENTS
    assert (
        open_mode
        == pipes.PIPE_ACCESS_DUPLEX | pipes.FILE_FLAG_OVERLAPPED | pipes.FILE_FLAG_FIRST_PIPE_INSTANCE
    )
    assert (instances, out_size, in_size, timeout) == (255, 4096, 4096, 0)
    later = pipes.control_pipe(None, False, first_instance=False).argv()
    assert not later[1] & pipes.FILE_FLAG_FIRST_PIPE_INSTANCE


def test_control_descriptor_by_setting() -> None:
    group = "S-1-5-21-1004336348-1177238915-682003330-1013"
    assert pipes.control_sddl(None, False) == "O:SYD:P(A;;GA;;;SY)(A;;GA;;;BA)"
    assert pipes.control_sddl(group, False) == f"O:SYD:P(A;;GA;;;SY)(A;;GA;;;BA)(A;;0x12018b;;;{group})"
    assert pipes.control_sddl(group, True) == "O:SYD:P(A;;GA;;;SY)(A;;GA;;;BA)(A;;0x12018b;;;AU)"


def test_clients_cannot_create_a_server_instance_or_change_the_descriptor() -> None:
    """A member with FILE_CREATE_PIPE_INSTANCE could serve the next client and impersonate it."""
    write_dac, write_owner = 0x00040000, 0x00080000
    assert pipes.CLIENT_ACCESS & (pipes.FILE_CREATE_PIPE_INSTANCE | write_dac | write_owner) == 0
    assert pipes.CLIENT_ACCESS & (pipes.FILE_READ_DATA | pipes.FILE_WRITE_DATA) == 3
    assert "GW" not in pipes.control_sddl("S-1-5-32-545", False)


def test_a_sid_cannot_smuggle_an_access_control_entry() -> None:
    for bad in ("S-1-5-21-1)(A;;GA;;;WD", "WD", "S-1-5", "s-1-5-32-544", "S-1-5-32-544 ", "S-1-5-32-544\n"):
        with pytest.raises(ValueError, match="not a SID"):
            pipes.control_sddl(bad, False)


class FakeSecurity:
    TokenUser = 1
    TokenGroups = 2

    def __init__(
        self, calls: list[Any], user: str, groups: list[tuple[str, int]], fail: bool = False
    ) -> None:
        self.calls = calls
        self.user = user
        self.groups = groups
        self.fail = fail

    class SECURITY_ATTRIBUTES:
        SECURITY_DESCRIPTOR: Any = None

    def ConvertStringSecurityDescriptorToSecurityDescriptor(self, sddl: str, revision: int) -> Any:
        self.calls.append(("ConvertStringSecurityDescriptorToSecurityDescriptor", sddl, revision))
        return ("SD", sddl)

    def OpenThreadToken(self, thread: Any, access: int, as_self: bool) -> str:
        self.calls.append(("OpenThreadToken", thread, access, as_self))
        return "token"

    def GetTokenInformation(self, token: str, kind: int) -> Any:
        self.calls.append(("GetTokenInformation", token, kind))
        if self.fail:
            raise OSError("access denied")
        return (
            (("sid", self.user), 0) if kind == self.TokenUser else [(("sid", s), a) for s, a in self.groups]
        )

    def RevertToSelf(self) -> None:
        self.calls.append(("RevertToSelf",))

    def ConvertSidToStringSid(self, value: tuple[str, str]) -> str:
        return value[1]


class FakePipe:
    def __init__(self, calls: list[Any]) -> None:
        self.calls = calls

    def CreateNamedPipe(self, *args: Any) -> str:
        self.calls.append(("CreateNamedPipe", *args[:-1], args[-1].SECURITY_DESCRIPTOR))
        return "pipe"

    def GetNamedPipeClientProcessId(self, handle: str) -> int:
        self.calls.append(("GetNamedPipeClientProcessId", handle))
        return 4242

    def ImpersonateNamedPipeClient(self, handle: str) -> None:
        self.calls.append(("ImpersonateNamedPipeClient", handle))


class FakeApi:
    def __init__(self, calls: list[Any]) -> None:
        self.calls = calls

    def GetCurrentThread(self) -> str:
        return "thread"

    def CloseHandle(self, handle: str) -> None:
        self.calls.append(("CloseHandle", handle))


def test_create_passes_the_descriptor_built_from_the_sddl() -> None:
    calls: list[Any] = []
    spec = pipes.uapi_pipe("wg0", first_instance=True)
    assert pipes.create(spec, FakePipe(calls), FakeSecurity(calls, "", [])) == "pipe"
    assert calls == [
        ("ConvertStringSecurityDescriptorToSecurityDescriptor", pipes.UAPI_SDDL, 1),
        ("CreateNamedPipe", *spec.argv(), ("SD", pipes.UAPI_SDDL)),
    ]


USER = "S-1-5-21-1004336348-1177238915-682003330-1001"
GROUP = "S-1-5-21-1004336348-1177238915-682003330-1013"


def test_caller_from_the_token_while_impersonating_then_reverting() -> None:
    calls: list[Any] = []
    groups = [(GROUP, pipes.SE_GROUP_ENABLED), (pipes.ADMINISTRATORS_SID, pipes.SE_GROUP_USE_FOR_DENY_ONLY)]
    who = pipes.caller("pipe", FakePipe(calls), FakeSecurity(calls, USER, groups), FakeApi(calls))
    assert who == pipes.Caller(4242, USER, (GROUP,))
    assert who.member_of(GROUP) and not who.administrator, "a filtered admin token is not an administrator"
    assert [c[0] for c in calls] == [
        "GetNamedPipeClientProcessId",
        "ImpersonateNamedPipeClient",
        "OpenThreadToken",
        "GetTokenInformation",
        "GetTokenInformation",
        "CloseHandle",
        "RevertToSelf",
    ]
    assert calls[2] == ("OpenThreadToken", "thread", pipes.TOKEN_QUERY, True)


def test_elevated_administrator_and_system_are_administrators() -> None:
    calls: list[Any] = []
    elevated = [(pipes.ADMINISTRATORS_SID, pipes.SE_GROUP_ENABLED | 0x3)]
    assert pipes.caller(
        "p", FakePipe(calls), FakeSecurity(calls, USER, elevated), FakeApi(calls)
    ).administrator
    assert pipes.Caller(4, pipes.SYSTEM_SID, ()).administrator
    assert not pipes.Caller(4, USER, (GROUP,)).member_of(None)


def test_reverts_even_when_reading_the_token_fails() -> None:
    calls: list[Any] = []
    with pytest.raises(OSError):
        pipes.caller("p", FakePipe(calls), FakeSecurity(calls, USER, [], fail=True), FakeApi(calls))
    assert [c[0] for c in calls][-2:] == ["CloseHandle", "RevertToSelf"]
