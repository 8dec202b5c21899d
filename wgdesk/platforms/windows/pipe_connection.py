"""A named pipe as the helper's `Connection` and `Listener` (`wgdesk.platforms.interface`), and the
control endpoint on it.

The helper's control server reads with timeouts and polls a stop flag between accepts; pipes do
neither by themselves, so every read, write and connect is overlapped I/O (the handles are opened
with ``FILE_FLAG_OVERLAPPED``) finished by waiting on an event with the timeout, and a timed-out
operation is cancelled (``CancelIo``) and waited for before the buffer is dropped — the kernel must
not write into memory we no longer own.

The listener always keeps one unconnected instance of the pipe: the first created with
``FILE_FLAG_FIRST_PIPE_INSTANCE`` (another owner of the name makes binding fail: `EndpointInUse`),
the next created as soon as a client is accepted, so a second client never finds the name missing.

pywin32's modules are passed in as one `Win32` bundle (fakes in the tests).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

from wgdesk.platforms.interface import EndpointInUse, PeerIdentity
from wgdesk.platforms.unsupported import MissingUapiEndpoints
from wgdesk.platforms.windows import pipes
from wgdesk.platforms.windows.identity import WindowsIdentity, sid_id

INFINITE = 0xFFFFFFFF
WAIT_TIMEOUT = 0x102
GENERIC_READ = 0x80000000
GENERIC_WRITE = 0x40000000
OPEN_EXISTING = 3
FILE_FLAG_OVERLAPPED = pipes.FILE_FLAG_OVERLAPPED
ERROR_FILE_NOT_FOUND = 2
ERROR_ACCESS_DENIED = 5
ERROR_BROKEN_PIPE = 109
ERROR_SEM_TIMEOUT = 121
ERROR_PIPE_BUSY = 231
ERROR_NO_DATA = 232
ERROR_PIPE_NOT_CONNECTED = 233
ERROR_PIPE_CONNECTED = 535
ERROR_IO_PENDING = 997
HEADER_CONSTANTS = {
    "GENERIC_READ": GENERIC_READ,
    "GENERIC_WRITE": GENERIC_WRITE,
    "OPEN_EXISTING": OPEN_EXISTING,
    "WAIT_TIMEOUT": WAIT_TIMEOUT,
    "ERROR_BROKEN_PIPE": ERROR_BROKEN_PIPE,
    "ERROR_SEM_TIMEOUT": ERROR_SEM_TIMEOUT,
    "ERROR_PIPE_BUSY": ERROR_PIPE_BUSY,
    "ERROR_NO_DATA": ERROR_NO_DATA,
    "ERROR_PIPE_NOT_CONNECTED": ERROR_PIPE_NOT_CONNECTED,
    "ERROR_PIPE_CONNECTED": ERROR_PIPE_CONNECTED,
    "ERROR_IO_PENDING": ERROR_IO_PENDING,
}
CLOSED = frozenset({ERROR_BROKEN_PIPE, ERROR_NO_DATA, ERROR_PIPE_NOT_CONNECTED})
ACCEPT_WAIT = 0.5
"""How long `PipeListener.accept` waits before `TimeoutError` (the server's stop-flag cadence)."""


@dataclass(frozen=True)
class Win32:
    """pywin32's modules this module calls."""

    win32file: Any
    win32pipe: Any
    win32event: Any
    win32security: Any
    win32api: Any
    pywintypes: Any

    @classmethod
    def load(cls) -> Win32:
        import pywintypes
        import win32api
        import win32event
        import win32file
        import win32pipe
        import win32security

        return cls(win32file, win32pipe, win32event, win32security, win32api, pywintypes)


class UsesWin32:
    """Loads pywin32 on first use (the backend object is built where pywin32 is absent)."""

    _w: Win32 | None = None

    @property
    def w(self) -> Win32:
        if self._w is None:
            self._w = Win32.load()
        return self._w


class _Overlapped:
    """One handle's overlapped operations, finished within a timeout."""

    def __init__(self, handle: Any, w: Win32) -> None:
        self.handle = handle
        self.w = w
        self.event = w.win32event.CreateEvent(None, True, False, None)
        self.timeout: float | None = None

    def new(self) -> Any:
        overlapped = self.w.pywintypes.OVERLAPPED()
        overlapped.hEvent = self.event
        return overlapped

    def finish(self, overlapped: Any, timeout: float | None) -> int:
        """The bytes the operation moved; `TimeoutError` after cancelling it."""
        milliseconds = INFINITE if timeout is None else max(0, int(timeout * 1000))
        if self.w.win32event.WaitForSingleObject(self.event, milliseconds) == WAIT_TIMEOUT:
            self.w.win32file.CancelIo(self.handle)
            with suppress(self.w.pywintypes.error):  # cancelled, as asked; waited for all the same
                self.w.win32file.GetOverlappedResult(self.handle, overlapped, True)
            raise TimeoutError("named pipe: timed out")
        return int(self.w.win32file.GetOverlappedResult(self.handle, overlapped, False))


class PipeConnection:
    """A connected pipe instance as a `Connection` (``recv`` returns b"" once the peer has gone)."""

    def __init__(self, handle: Any, w: Win32) -> None:
        self.handle = handle
        self.w = w
        self.reader = _Overlapped(handle, w)
        self.writer = _Overlapped(handle, w)
        """One event per direction: a read and a write may be pending at once (two threads)."""

    def settimeout(self, seconds: float | None, /) -> None:
        self.reader.timeout = self.writer.timeout = seconds

    def recv(self, size: int, /) -> bytes:
        buffer = self.w.win32file.AllocateReadBuffer(size)
        overlapped = self.reader.new()
        try:
            self.w.win32file.ReadFile(self.handle, buffer, overlapped)
            count = self.reader.finish(overlapped, self.reader.timeout)
        except self.w.pywintypes.error as exc:
            if exc.winerror in CLOSED:
                return b""
            raise OSError(exc.winerror, f"named pipe read: {exc.strerror}") from exc
        return bytes(buffer[:count])

    def sendall(self, data: bytes, /) -> None:
        view = memoryview(data)
        while view:
            overlapped = self.writer.new()
            try:
                self.w.win32file.WriteFile(self.handle, bytes(view), overlapped)
                count = self.writer.finish(overlapped, self.writer.timeout)
            except self.w.pywintypes.error as exc:
                if exc.winerror in CLOSED:
                    raise BrokenPipeError(exc.winerror, "named pipe: the client has gone") from exc
                raise OSError(exc.winerror, f"named pipe write: {exc.strerror}") from exc
            view = view[count:]

    def close(self) -> None:
        if self.handle is not None:
            self.w.win32api.CloseHandle(self.handle)
            self.w.win32api.CloseHandle(self.reader.event)
            self.w.win32api.CloseHandle(self.writer.event)
            self.handle = None


class PipeListener:
    """`Listener` of one pipe name (``spec(first_instance)`` gives each instance's `pipes.PipeSpec`)."""

    def __init__(self, spec: Callable[[bool], pipes.PipeSpec], w: Win32) -> None:
        self.spec = spec
        self.w = w
        try:
            self.pending: Any = self._create(first=True)
        except w.pywintypes.error as exc:
            if exc.winerror in (ERROR_ACCESS_DENIED, ERROR_PIPE_BUSY):
                raise EndpointInUse(f"another process owns {spec(True).name}") from exc
            raise
        self.io = _Overlapped(self.pending, w)

    def _create(self, first: bool) -> Any:
        return pipes.create(self.spec(first), self.w.win32pipe, self.w.win32security)

    def accept(self) -> PipeConnection:
        if self.pending is None:
            raise OSError("listener closed")
        overlapped = self.io.new()
        status = self.w.win32pipe.ConnectNamedPipe(self.pending, overlapped)
        if status != ERROR_PIPE_CONNECTED:  # already connected between creating and now: no wait
            self.io.handle = self.pending
            self.io.finish(overlapped, ACCEPT_WAIT)
        connection = PipeConnection(self.pending, self.w)
        self.pending = self._create(first=False)
        self.io.handle = self.pending
        return connection

    def close(self) -> None:
        if self.pending is not None:
            self.w.win32api.CloseHandle(self.pending)
            self.w.win32api.CloseHandle(self.io.event)
            self.pending = None


class PipeControlEndpoint(UsesWin32):
    """`ControlEndpoint` on the control pipe. ``group`` (an id of `identity`) becomes its SID again."""

    def __init__(self, identity: WindowsIdentity, w: Win32 | None = None) -> None:
        self.identity = identity
        self._w = w

    def default_address(self) -> str:
        return pipes.CONTROL_PIPE

    def bind(self, address: str, group: int | None, open_to_all: bool) -> PipeListener:
        if address != pipes.CONTROL_PIPE:
            raise PermissionError(f"the control pipe is {pipes.CONTROL_PIPE}, not {address}")
        group_sid = None if group is None else self.identity.sid_of(group)
        return PipeListener(lambda first: pipes.control_pipe(group_sid, open_to_all, first), self.w)

    def peer(self, connection: Any) -> PeerIdentity:
        if not isinstance(connection, PipeConnection):
            raise TypeError("not a pipe connection")
        who = pipes.caller(connection.handle, self.w.win32pipe, self.w.win32security, self.w.win32api)
        return self.identity.peer(who)

    def connect(self, address: str, timeout: float) -> PipeConnection:
        """A client's connection to the helper's pipe."""
        return open_pipe(address, timeout, self.w, "no helper answers on")

    def server_uid(self, connection: Any) -> int | None:
        """0 when the pipe is LocalSystem's or the Administrators' (an elevated helper started by
        hand), else the owner's id: the client then refuses it."""
        if not isinstance(connection, PipeConnection):
            raise TypeError("not a pipe connection")
        sid = pipes.owner(connection.handle, self.w.win32security)
        return 0 if sid in (pipes.SYSTEM_SID, pipes.ADMINISTRATORS_SID) else sid_id(sid)


def open_pipe(path: str, timeout: float, w: Win32, missing: str) -> PipeConnection:
    """A client's end of the pipe ``path`` (waiting up to ``timeout`` for a free instance; every read
    and write then within ``timeout``). Raises `FileNotFoundError` (``missing`` + the path) when no
    server has the name, `PermissionError` when its descriptor refuses us, `OSError` otherwise."""
    try:
        w.win32pipe.WaitNamedPipe(path, max(1, int(timeout * 1000)))
        handle = w.win32file.CreateFile(
            path, GENERIC_READ | GENERIC_WRITE, 0, None, OPEN_EXISTING, FILE_FLAG_OVERLAPPED, None
        )
    except w.pywintypes.error as exc:
        if exc.winerror == ERROR_FILE_NOT_FOUND:
            raise FileNotFoundError(exc.winerror, f"{missing} {path}") from exc
        if exc.winerror == ERROR_ACCESS_DENIED:
            raise PermissionError(exc.winerror, f"{path}: access denied") from exc
        raise OSError(exc.winerror, f"{path}: {exc.strerror}") from exc
    connection = PipeConnection(handle, w)
    connection.settimeout(timeout)
    return connection


class PipeUapiEndpoints(MissingUapiEndpoints, UsesWin32):
    """`UapiEndpoints` on Windows: the helper connects to an engine's UAPI pipe (wireguard-go's path,
    so it works with wireguard-go.exe too); the listener is the engine's own (`listen` stays refused:
    a pipe is not the ``socket.socket`` the interface hands over), and nothing is left on disk to remove."""

    def __init__(self, w: Win32 | None = None) -> None:
        super().__init__("win32")
        self._w = w

    def path(self, ifname: str) -> str:
        return pipes.uapi_path(ifname)

    def connect(self, ifname: str, timeout: float) -> PipeConnection:
        """Open the engine's pipe (waiting up to ``timeout`` for a free instance)."""
        return open_pipe(self.path(ifname), timeout, self.w, "no engine answers on")

    def ready(self, ifname: str) -> bool:
        """Whether the engine has created its pipe: ``WaitNamedPipe`` for 1 ms (0 would mean the
        pipe's default wait) fails with ``ERROR_FILE_NOT_FOUND`` while no server has the name, and
        with ``ERROR_SEM_TIMEOUT`` when it exists but every instance is busy. Opens nothing."""
        try:
            self.w.win32pipe.WaitNamedPipe(self.path(ifname), 1)
        except self.w.pywintypes.error as exc:
            if exc.winerror == ERROR_FILE_NOT_FOUND:
                return False
            if exc.winerror == ERROR_SEM_TIMEOUT:
                return True
            raise OSError(exc.winerror, f"{self.path(ifname)}: {exc.strerror}") from exc
        return True

    def remove(self, path: str) -> None:
        """Nothing: a pipe disappears with its last handle."""
