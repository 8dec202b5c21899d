"""Accounts and processes on Windows as the helper counts them: SIDs mapped to the integer ids of
`wgdesk.platforms.interface.PeerIdentity` and `Identity`.

The helper owns tunnels by uid and authorises by gid. Windows has SIDs, so each SID gets a stable id
(`sid_id`: 62 bits of its SHA-256, never 0) and the backend remembers which SID an id stands for
(`WindowsIdentity.sid_of`, for the control pipe's descriptor). A caller that is LocalSystem or an
elevated administrator is uid 0, as the interface asks. Ids are not persisted anywhere: they are the
same on every run because they are computed.
"""

from __future__ import annotations

import hashlib
import importlib
from typing import Any

from wgdesk.platforms.errors import Unsupported
from wgdesk.platforms.interface import PeerIdentity
from wgdesk.platforms.windows import pipes


class LazyModule:
    """A pywin32 module imported on first use (the backend is built where pywin32 is absent)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __getattr__(self, attribute: str) -> Any:
        return getattr(importlib.import_module(self.name), attribute)


PROCESS_TERMINATE = 0x0001
PROCESS_QUERY_LIMITED_INFORMATION = 0x1000


def sid_id(sid: str) -> int:
    """The id of ``sid`` (from 1 to 2**62)."""
    digest = hashlib.sha256(pipes.sid(sid).encode()).digest()
    return (int.from_bytes(digest[:8], "big") >> 2) + 1


class WindowsIdentity:
    """`Identity` over pywin32 (``win32security``, ``win32api``, ``win32process``: modules or fakes)."""

    def __init__(self, win32security: Any, win32api: Any, win32process: Any) -> None:
        self.win32security = win32security
        self.win32api = win32api
        self.win32process = win32process
        self.known: dict[int, str] = {}

    def _id(self, sid: str) -> int:
        number = sid_id(sid)
        self.known[number] = sid
        return number

    def sid_of(self, number: int) -> str:
        if number not in self.known:
            raise Unsupported(f"id {number} names no account or group this helper has looked up")
        return self.known[number]

    def _lookup(self, name: str) -> str | None:
        try:
            found, _, _ = self.win32security.LookupAccountName(None, name)
        except Exception:  # pywintypes.error: no such account
            return None
        return str(self.win32security.ConvertSidToStringSid(found))

    def group_id(self, name: str) -> int | None:
        sid = self._lookup(name)
        return None if sid is None else self._id(sid)

    def account_ids(self, user: str) -> tuple[int, int]:
        sid = self._lookup(user)
        if sid is None:
            raise KeyError(user)
        number = self._id(sid)
        return number, number

    def peer(self, caller: pipes.Caller) -> PeerIdentity:
        """A control-pipe caller as the helper's `PeerIdentity` (administrators: uid 0)."""
        user = self._id(caller.user)
        groups = tuple(self._id(g) for g in caller.groups)
        return PeerIdentity(caller.pid, 0 if caller.administrator else user, user, groups)

    def start_time(self, pid: int) -> int | None:
        """Creation time in microseconds since 1970, None when there is no such process."""
        try:
            handle = self.win32api.OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, False, pid)
        except Exception:
            return None
        try:
            return _created(self.win32process.GetProcessTimes(handle))
        finally:
            self.win32api.CloseHandle(handle)

    def terminate(self, pid: int, start_time: int | None) -> None:
        try:
            access = PROCESS_TERMINATE | PROCESS_QUERY_LIMITED_INFORMATION
            handle = self.win32api.OpenProcess(access, False, pid)
        except Exception:
            return  # gone already
        try:
            if start_time is not None and _created(self.win32process.GetProcessTimes(handle)) != start_time:
                return  # the pid was reused: not ours to stop
            self.win32api.TerminateProcess(handle, 1)
        finally:
            self.win32api.CloseHandle(handle)


def _created(times: Any) -> int:
    """pywin32 gives ``CreationTime`` as a datetime (an int in old versions)."""
    value = times["CreationTime"]
    return int(value.timestamp() * 1_000_000) if hasattr(value, "timestamp") else int(value)
