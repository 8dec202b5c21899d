"""Named pipes on Windows: the engines' UAPI pipes and the helper's control pipe, and who connected.

**UAPI.** An engine listens on ``\\\\.\\pipe\\ProtectedPrefix\\Administrators\\WireGuard\\NAME``, the
path and security descriptor wireguard-go uses, so the real ``wg.exe show``/``set`` works on a wgdesk
tunnel. ``ProtectedPrefix\\Administrators`` means only an elevated administrator or SYSTEM can create a
pipe under it (no unprivileged process can squat the name); the descriptor (`UAPI_SDDL`) gives full
access to SYSTEM and Administrators only, owner SYSTEM, and a high mandatory label with no-write-up,
no-read-up, no-execute-up: a medium-integrity process of an administrator cannot talk to it.

**Control.** The helper's pipe (`CONTROL_PIPE`) is where the unprivileged app connects: created with
``PIPE_REJECT_REMOTE_CLIENTS`` (an SMB client on the network cannot reach it) and
``FILE_FLAG_FIRST_PIPE_INSTANCE`` (if another process already owns the name we fail instead of
sharing it), with a descriptor (`control_sddl`) that lets SYSTEM and Administrators do anything and
the ``wgdesk`` group (or, for a monitor setup, every authenticated user) read and write — never change
the descriptor, and never create another server instance of the pipe (`CLIENT_ACCESS`). Who is at
the other end is read from the client's token while impersonating it (`caller`), never from anything
the client says.

SIDs go into SDDL strings, so each is validated (`sid`) first: a group "SID" read from a setting
must not be able to add an access-control entry of its own.

The Win32 calls go through pywin32's modules (``win32pipe``, ``win32security``, ``win32api``,
``win32file``), passed in, so the argument lists are tested here against fakes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

UAPI_PREFIX = "\\\\.\\pipe\\ProtectedPrefix\\Administrators\\WireGuard\\"
CONTROL_PIPE = "\\\\.\\pipe\\wgdesk-helper"

UAPI_SDDL = "O:SYD:P(A;;GA;;;SY)(A;;GA;;;BA)S:(ML;;NWNRNX;;;HI)"
"""wireguard-go's UAPI descriptor (``ipc/uapi_windows.go``) for a LocalSystem creator."""

SYSTEM_SID = "S-1-5-18"
ADMINISTRATORS_SID = "S-1-5-32-544"
AUTHENTICATED_USERS_SID = "S-1-5-11"

PIPE_ACCESS_DUPLEX = 0x00000003
FILE_FLAG_FIRST_PIPE_INSTANCE = 0x00080000
FILE_FLAG_OVERLAPPED = 0x40000000
PIPE_TYPE_BYTE = 0x00000000
PIPE_READMODE_BYTE = 0x00000000
PIPE_WAIT = 0x00000000
PIPE_REJECT_REMOTE_CLIENTS = 0x00000008
PIPE_UNLIMITED_INSTANCES = 255
SDDL_REVISION_1 = 1
SE_GROUP_ENABLED = 0x00000004
SE_GROUP_USE_FOR_DENY_ONLY = 0x00000010
TOKEN_QUERY = 0x0008

FILE_READ_DATA = 0x0001
FILE_WRITE_DATA = 0x0002
FILE_CREATE_PIPE_INSTANCE = 0x0004
"""The right to create another *server* end of the pipe: never for clients (see `CLIENT_ACCESS`)."""
FILE_READ_EA = 0x0008
FILE_READ_ATTRIBUTES = 0x0080
FILE_WRITE_ATTRIBUTES = 0x0100
READ_CONTROL = 0x00020000
SYNCHRONIZE = 0x00100000
CLIENT_ACCESS = (
    FILE_READ_DATA
    | FILE_WRITE_DATA
    | FILE_READ_EA
    | FILE_READ_ATTRIBUTES
    | FILE_WRITE_ATTRIBUTES
    | READ_CONTROL
    | SYNCHRONIZE
)
"""What a client of the control pipe may do: read and write messages, set its handle's mode. Not
``GENERIC_WRITE`` (``GW``): for a pipe that includes ``FILE_CREATE_PIPE_INSTANCE`` (the same bit as
``FILE_APPEND_DATA``), and a group member holding it could create a server instance of our pipe, be
connected to by the next client — another member, or an administrator's app — and impersonate it."""

SE_KERNEL_OBJECT = 6
OWNER_SECURITY_INFORMATION = 0x00000001

HEADER_CONSTANTS = {
    "SE_KERNEL_OBJECT": SE_KERNEL_OBJECT,
    "OWNER_SECURITY_INFORMATION": OWNER_SECURITY_INFORMATION,
    "PIPE_ACCESS_DUPLEX": PIPE_ACCESS_DUPLEX,
    "FILE_FLAG_FIRST_PIPE_INSTANCE": FILE_FLAG_FIRST_PIPE_INSTANCE,
    "FILE_FLAG_OVERLAPPED": FILE_FLAG_OVERLAPPED,
    "PIPE_TYPE_BYTE": PIPE_TYPE_BYTE,
    "PIPE_READMODE_BYTE": PIPE_READMODE_BYTE,
    "PIPE_WAIT": PIPE_WAIT,
    "PIPE_REJECT_REMOTE_CLIENTS": PIPE_REJECT_REMOTE_CLIENTS,
    "PIPE_UNLIMITED_INSTANCES": PIPE_UNLIMITED_INSTANCES,
    "SDDL_REVISION_1": SDDL_REVISION_1,
    "SE_GROUP_ENABLED": SE_GROUP_ENABLED,
    "SE_GROUP_USE_FOR_DENY_ONLY": SE_GROUP_USE_FOR_DENY_ONLY,
    "TOKEN_QUERY": TOKEN_QUERY,
    "FILE_READ_DATA": FILE_READ_DATA,
    "FILE_WRITE_DATA": FILE_WRITE_DATA,
    "FILE_CREATE_PIPE_INSTANCE": FILE_CREATE_PIPE_INSTANCE,
    "FILE_APPEND_DATA": FILE_CREATE_PIPE_INSTANCE,
    "FILE_READ_EA": FILE_READ_EA,
    "FILE_READ_ATTRIBUTES": FILE_READ_ATTRIBUTES,
    "FILE_WRITE_ATTRIBUTES": FILE_WRITE_ATTRIBUTES,
    "READ_CONTROL": READ_CONTROL,
    "SYNCHRONIZE": SYNCHRONIZE,
    "FILE_GENERIC_WRITE & FILE_CREATE_PIPE_INSTANCE": FILE_CREATE_PIPE_INSTANCE,
    "FILE_GENERIC_READ | FILE_WRITE_DATA | FILE_WRITE_ATTRIBUTES": CLIENT_ACCESS,
}
"""Values held against mingw-w64's headers by tests/windows/test_structures.py."""

_SID = re.compile(r"S-1-\d{1,13}(-\d{1,10}){1,15}")
_TUNNEL = re.compile(r"[A-Za-z0-9_=+.-]{1,32}")


def sid(value: str) -> str:
    """``value`` if it is a SID in string form (``S-1-5-21-…``); `ValueError` otherwise."""
    if not _SID.fullmatch(value):
        raise ValueError(f"not a SID: {value!r}")
    return value


def uapi_path(name: str) -> str:
    """The UAPI pipe of tunnel ``name`` (wg-quick's name rules: no path separators)."""
    if not _TUNNEL.fullmatch(name):
        raise ValueError(f"invalid tunnel name {name!r}")
    return UAPI_PREFIX + name


def control_sddl(group_sid: str | None, open_to_all: bool) -> str:
    """The control pipe's descriptor: SYSTEM and Administrators full access; ``group_sid`` (the
    ``wgdesk`` group), or every authenticated user when ``open_to_all``, `CLIENT_ACCESS`."""
    aces = ["(A;;GA;;;SY)", "(A;;GA;;;BA)"]
    if open_to_all:
        aces.append(f"(A;;{CLIENT_ACCESS:#x};;;AU)")
    elif group_sid is not None:
        aces.append(f"(A;;{CLIENT_ACCESS:#x};;;{sid(group_sid)})")
    return "O:SYD:P" + "".join(aces)


@dataclass(frozen=True)
class PipeSpec:
    """Everything ``CreateNamedPipeW`` is given for one pipe instance."""

    name: str
    sddl: str
    first_instance: bool
    open_mode: int = PIPE_ACCESS_DUPLEX | FILE_FLAG_OVERLAPPED
    pipe_mode: int = PIPE_TYPE_BYTE | PIPE_READMODE_BYTE | PIPE_WAIT | PIPE_REJECT_REMOTE_CLIENTS
    instances: int = PIPE_UNLIMITED_INSTANCES
    buffer_size: int = 4096

    def argv(self) -> tuple[str, int, int, int, int, int, int]:
        """The arguments of ``win32pipe.CreateNamedPipe`` before the security attributes."""
        mode = self.open_mode | (FILE_FLAG_FIRST_PIPE_INSTANCE if self.first_instance else 0)
        return (self.name, mode, self.pipe_mode, self.instances, self.buffer_size, self.buffer_size, 0)


def uapi_pipe(name: str, first_instance: bool) -> PipeSpec:
    return PipeSpec(uapi_path(name), UAPI_SDDL, first_instance)


def control_pipe(group_sid: str | None, open_to_all: bool, first_instance: bool) -> PipeSpec:
    return PipeSpec(CONTROL_PIPE, control_sddl(group_sid, open_to_all), first_instance)


def create(spec: PipeSpec, win32pipe: Any, win32security: Any) -> Any:
    """One instance of the pipe ``spec`` (a pywin32 handle). The first instance of a pipe is created
    with ``FILE_FLAG_FIRST_PIPE_INSTANCE``, later ones (to accept the next client) without."""
    attributes = win32security.SECURITY_ATTRIBUTES()
    attributes.SECURITY_DESCRIPTOR = win32security.ConvertStringSecurityDescriptorToSecurityDescriptor(
        spec.sddl, SDDL_REVISION_1
    )
    return win32pipe.CreateNamedPipe(*spec.argv(), attributes)


@dataclass(frozen=True)
class Caller:
    """Who is at the other end of a control pipe, from the client's token."""

    pid: int
    user: str
    """The user's SID."""
    groups: tuple[str, ...]
    """SIDs of the groups enabled in the token (deny-only groups, as in a filtered administrator
    token of a medium-integrity app, are left out: they grant nothing)."""

    @property
    def administrator(self) -> bool:
        """SYSTEM, or an elevated administrator (Administrators enabled in the token)."""
        return self.user == SYSTEM_SID or ADMINISTRATORS_SID in self.groups

    def member_of(self, group_sid: str | None) -> bool:
        return group_sid is not None and group_sid in self.groups


def caller(handle: Any, win32pipe: Any, win32security: Any, win32api: Any) -> Caller:
    """Read the client's identity by impersonating it on the pipe ``handle`` (then reverting; if
    reverting fails the helper must not go on as the client: the error propagates)."""
    pid = int(win32pipe.GetNamedPipeClientProcessId(handle))
    win32pipe.ImpersonateNamedPipeClient(handle)
    try:
        token = win32security.OpenThreadToken(win32api.GetCurrentThread(), TOKEN_QUERY, True)
        try:
            user, _ = win32security.GetTokenInformation(token, win32security.TokenUser)
            groups = win32security.GetTokenInformation(token, win32security.TokenGroups)
        finally:
            win32api.CloseHandle(token)
    finally:
        win32security.RevertToSelf()
    enabled = tuple(
        win32security.ConvertSidToStringSid(group)
        for group, attributes in groups
        if attributes & SE_GROUP_ENABLED and not attributes & SE_GROUP_USE_FOR_DENY_ONLY
    )
    return Caller(pid, win32security.ConvertSidToStringSid(user), enabled)


def owner(handle: Any, win32security: Any) -> str:
    """The owner SID of the pipe at the other end of a client's ``handle``. The helper's pipe is
    owned by LocalSystem (``O:SY``); a process that grabbed the name before the helper started owns
    its pipe itself, and only LocalSystem or an administrator's restore privilege can give a pipe
    another owner — so the owner tells a client whether it talks to the helper."""
    descriptor = win32security.GetSecurityInfo(handle, SE_KERNEL_OBJECT, OWNER_SECURITY_INFORMATION)
    return str(win32security.ConvertSidToStringSid(descriptor.GetSecurityDescriptorOwner()))
