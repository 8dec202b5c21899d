"""`wgdeskctl up`/`down` on Windows with the real engine: the helper's `TunnelManager` and the engine's
`wgdesk.engine.main.main` both with the real `WindowsPlatform`, talking over a named pipe whose kernel
side is faked (`PipeBroker`: pywin32's pipe, file and event calls, joining the engine's server instance
to the helper's client), with the DLLs faked as in `test_engine_main.py` (a ``wintun.dll`` whose
adapter becomes known to ``iphlpapi`` by its alias and GUID, as Windows makes it) and the engine's
process as a thread of this one (the engine runs in the main thread, which its signal handlers need;
the helper in another).

What must hold: the helper starts the engine with nothing, waits for its pipe, and the engine's real
UAPI server takes the helper's set (the key, the peer) and answers its get; the helper puts the
addresses on the adapter's LUID; ``down`` stops the engine, which closes its adapter
(``WintunCloseAdapter``) and exits 0. The order of the helper's steps, and its waits, are held by
`test_helper_bringup.py` (its scripted engine leaves time between adapter and pipe; this one makes its
pipe right after its adapter, so this test would pass without the helper's wait for the pipe).
"""

from __future__ import annotations

import ctypes
import io
import queue
import signal
import sys
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.windows.fake_windows import DllShim, Error, FakeKernel32, FakeWintun
from tests.windows.test_defaultroute import TUNNEL, machine
from tests.windows.test_helper_bringup import CONFIG, NAME, PEER, IpHelper, Processes, Timeline, Wfp, luids
from wgdesk import platforms
from wgdesk.config import key_bytes
from wgdesk.engine import main as engine_main
from wgdesk.helper import engine_process
from wgdesk.helper.events import Events
from wgdesk.helper.logbook import LogBook
from wgdesk.helper.settings import Settings
from wgdesk.helper.tunnels import TunnelManager
from wgdesk.platforms.windows import WindowsPlatform, defaultroute, dlls, pipes
from wgdesk.platforms.windows.engine_host import WindowsEngineHost
from wgdesk.platforms.windows.identity import WindowsIdentity
from wgdesk.platforms.windows.pipe_connection import (
    ERROR_BROKEN_PIPE,
    ERROR_IO_PENDING,
    ERROR_NO_DATA,
    ERROR_PIPE_CONNECTED,
    WAIT_TIMEOUT,
    PipeUapiEndpoints,
    Win32,
)
from wgdesk.platforms.windows.structures import MIB_UNICASTIPADDRESS_ROW

ERROR_FILE_NOT_FOUND = 2


class Channel:
    """One connected pipe instance: bytes each way, and which ends are closed."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.data = {"server": bytearray(), "client": bytearray()}  # what each end has to read
        self.closed = {"server": False, "client": False}
        self.connected = False


class Event:
    def __init__(self) -> None:
        self.timed_out = False


class Overlapped:
    hEvent: Any = None
    result = 0


class PipeBroker:
    """pywin32's pipe calls as the kernel answers them, both ends in this process. Operations finish
    at once or time out (a blocked read waits at most its wait's length, then the wait says
    ``WAIT_TIMEOUT``): the overlapped machinery of `pipe_connection` runs as written."""

    SECURITY_ATTRIBUTES = type("SECURITY_ATTRIBUTES", (), {"SECURITY_DESCRIPTOR": None})
    OVERLAPPED = Overlapped
    error = Error
    WAIT = 0.2

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.instances: dict[str, tuple[str, Channel]] = {}  # server handle -> (name, channel)
        self.ends: dict[str, tuple[Channel, str]] = {}  # any handle -> (channel, side)
        self.count = 0
        self.created: list[str] = []

    def bundle(self) -> Win32:
        return Win32(self, self, self, self, self, self)

    def _handle(self, kind: str) -> str:
        self.count += 1
        return f"{kind}{self.count}"

    # win32event
    def CreateEvent(self, *args: Any) -> Event:
        return Event()

    def WaitForSingleObject(self, event: Event, milliseconds: int) -> int:
        if event.timed_out:
            event.timed_out = False
            return WAIT_TIMEOUT
        return 0

    # win32security
    def ConvertStringSecurityDescriptorToSecurityDescriptor(self, sddl: str, revision: int) -> str:
        return sddl

    # win32pipe
    def CreateNamedPipe(self, name: str, *rest: Any) -> str:
        with self.cond:
            handle = self._handle("server")
            channel = Channel()
            self.instances[handle] = (name, channel)
            self.ends[handle] = (channel, "server")
            self.created.append(name)
            self.cond.notify_all()
            return handle

    def _free(self, path: str) -> Channel | None:
        for name, channel in self.instances.values():
            if name == path and not channel.connected and not channel.closed["server"]:
                return channel
        return None

    def ConnectNamedPipe(self, handle: str, overlapped: Overlapped) -> int:
        _, channel = self.instances[handle]
        with self.cond:
            if self.cond.wait_for(lambda: channel.connected, self.WAIT):
                return ERROR_PIPE_CONNECTED
        overlapped.hEvent.timed_out = True
        return ERROR_IO_PENDING

    def WaitNamedPipe(self, path: str, milliseconds: int) -> None:
        with self.cond:
            if self._free(path) is None:
                raise Error(ERROR_FILE_NOT_FOUND)

    # win32file
    def CreateFile(self, path: str, *rest: Any) -> str:
        with self.cond:
            channel = self._free(path)
            if channel is None:
                raise Error(ERROR_FILE_NOT_FOUND)
            channel.connected = True
            handle = self._handle("client")
            self.ends[handle] = (channel, "client")
            self.cond.notify_all()
            return handle

    def AllocateReadBuffer(self, size: int) -> bytearray:
        return bytearray(size)

    def ReadFile(self, handle: str, buffer: bytearray, overlapped: Overlapped) -> tuple[int, bytearray]:
        channel, side = self.ends[handle]
        other = "client" if side == "server" else "server"
        with channel.cond:
            if not channel.cond.wait_for(lambda: channel.data[side] or channel.closed[other], self.WAIT):
                overlapped.hEvent.timed_out = True
                return ERROR_IO_PENDING, buffer
            if not channel.data[side]:
                raise Error(ERROR_BROKEN_PIPE)
            count = min(len(buffer), len(channel.data[side]))
            buffer[:count] = channel.data[side][:count]
            del channel.data[side][:count]
        overlapped.result = count
        return ERROR_IO_PENDING, buffer

    def WriteFile(self, handle: str, data: bytes, overlapped: Overlapped) -> tuple[int, int]:
        channel, side = self.ends[handle]
        other = "client" if side == "server" else "server"
        with channel.cond:
            if channel.closed[other]:
                raise Error(ERROR_NO_DATA)
            channel.data[other] += data
            channel.cond.notify_all()
        overlapped.result = len(data)
        return ERROR_IO_PENDING, len(data)

    def GetOverlappedResult(self, handle: str, overlapped: Overlapped, wait: bool) -> int:
        return overlapped.result

    def CancelIo(self, handle: str) -> None:
        return None

    # win32api
    def CloseHandle(self, handle: Any) -> None:
        if isinstance(handle, str) and handle in self.ends:
            channel, side = self.ends.pop(handle)
            with channel.cond:
                channel.closed[side] = True
                channel.cond.notify_all()
            self.instances.pop(handle, None)


class Wintun(FakeWintun):
    """``wintun.dll`` whose adapter Windows then knows by its alias and GUID (``iphlpapi``)."""

    def __init__(self, kernel: FakeKernel32, ip: IpHelper) -> None:
        super().__init__(kernel)
        self.ip = ip

    def WintunCreateAdapter(self, name: str, tunnel_type: str, guid: Any) -> int:
        handle = super().WintunCreateAdapter(name, tunnel_type, guid)
        self.ip.guids[self.LUID] = uuid.UUID(bytes_le=ctypes.string_at(ctypes.addressof(guid._obj), 16))
        self.ip.aliases[name] = self.LUID
        return handle

    def WintunCloseAdapter(self, adapter: int) -> None:
        super().WintunCloseAdapter(adapter)
        for name in [n for n, luid in self.ip.aliases.items() if luid == self.LUID]:
            del self.ip.aliases[name]


class EngineThread:
    """The engine's process, `subprocess.Popen` as the helper sees it: `main.main` runs it in this
    process's main thread (the test hands it over); ``terminate`` is the adapter going away, which
    ends the engine as its process ending would end its session."""

    def __init__(
        self, wintun: Wintun, kernel: FakeKernel32, argv: list[str], starts: queue.Queue[Any]
    ) -> None:
        self.wintun, self.kernel, self.argv = wintun, kernel, argv
        self.pid = 4243
        self._handle = "process"
        self.returncode: int | None = None
        self.done = threading.Event()
        self.stdout = io.BytesIO(b"")  # its output: the engine logs to this process's here
        starts.put(self)

    def run(self) -> None:
        try:
            self.returncode = engine_main.main(self.argv[1:])
        finally:
            self.done.set()

    def poll(self) -> int | None:
        return self.returncode if self.done.is_set() else None

    def wait(self, timeout: float | None = None) -> int:
        self.done.wait(timeout)
        assert self.returncode is not None
        return self.returncode

    def terminate(self) -> None:
        with self.wintun.lock:
            self.wintun.terminating = True
        self.kernel.SetEvent(self.wintun.read_event)

    kill = terminate


def test_up_and_down_with_the_real_engine_over_its_pipe(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    timeline = Timeline()
    ip = IpHelper(timeline)
    network = machine()
    ip.routes = [r for r in network.routes if r[1] != TUNNEL]
    ip.interfaces = network.interfaces
    ip.interfaces[(FakeWintun.LUID, 2)] = ip.interfaces[(FakeWintun.LUID, 23)] = (65535, 25, 1)
    kernel = FakeKernel32()
    wintun = Wintun(kernel, ip)
    fwp = Wfp(timeline)
    broker = PipeBroker()
    starts: queue.Queue[Any] = queue.Queue()

    def load(name: str | Path) -> Any:
        if isinstance(name, Path):
            return DllShim(wintun)
        return {"iphlpapi": ip, "fwpuclnt": DllShim(fwp), "kernel32": kernel}[name]

    def popen(argv: list[str], **kwargs: Any) -> EngineThread:
        return EngineThread(wintun, kernel, argv, starts)

    monkeypatch.setattr(dlls, "load", load)
    monkeypatch.setattr(dlls, "last_error", lambda: wintun.error)
    monkeypatch.setattr(Win32, "load", classmethod(lambda cls: broker.bundle()))
    monkeypatch.setattr(defaultroute, "bind_socket", lambda sock, family, index: None)
    for name in ("WG_TUN_FD", "WG_UAPI_FD", "WGDESK_UDP_FDS", "WGDESK_RUN_AS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("WGDESK_PORTABLE", "1")
    backend = WindowsPlatform()
    jobbed: list[Any] = []
    job = type("Job", (), {"add": lambda self, handle: jobbed.append(handle)})
    backend.engine = WindowsEngineHost(job=job, popen=popen)
    processes = Processes()
    backend.identity = WindowsIdentity(None, processes, processes)
    backend.uapi = PipeUapiEndpoints()
    for module in (platforms, engine_process):
        monkeypatch.setattr(module, "backend", lambda: backend)
    monkeypatch.setattr(platforms, "create", lambda *args, **kwargs: backend)
    settings = Settings(
        engine_path=sys.executable,
        lockdown_file=str(tmp_path / "lockdown.json"),
        persistent_dir=str(tmp_path / "var"),  # not the (faked) machine's %ProgramData%
    )
    manager = TunnelManager(settings, tmp_path / "state", LogBook(), Events())

    outcome: dict[str, Any] = {}

    def helper() -> None:
        try:
            outcome["up"] = manager.up(NAME, CONFIG, full_tunnel=False, kill_switch=False)
            outcome["listen_port"] = manager.tunnels[NAME].listen_port
            outcome["get"] = engine_process.uapi_get(NAME)  # what `wg show` would ask
            manager.down(NAME)
            outcome["down"] = True
        except BaseException as e:  # reported by the main thread
            outcome["error"] = e
            starts.put(None)

    handlers = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    worker = threading.Thread(target=helper, daemon=True)
    worker.start()
    try:
        engine = starts.get(timeout=20)
        if engine is not None:
            engine.run()  # until down stops it
    finally:
        signal.signal(signal.SIGTERM, handlers[0])
        signal.signal(signal.SIGINT, handlers[1])
        worker.join(20)
    assert "error" not in outcome, outcome.get("error")
    assert outcome.get("down") is True
    assert outcome["up"]["interface"] == NAME
    assert engine is not None and engine.returncode == 0, "the engine ended cleanly with its adapter"
    assert engine.argv == [sys.executable, "-f", NAME] and jobbed == ["process"]
    names = [n for n, _ in wintun.calls]
    assert names[0] == "WintunCreateAdapter" and names[-1] == "WintunCloseAdapter"
    assert NAME not in ip.aliases, "the adapter is gone"
    assert luids(ip.calls, "CreateUnicastIpAddressEntry", MIB_UNICASTIPADDRESS_ROW) == [FakeWintun.LUID]
    device = outcome["get"]
    assert [p["public_key"] for p in device["peers"]] == [key_bytes(PEER).hex()]
    assert device["peers"][0]["allowed_ips"] == ["10.9.0.0/24"]
    assert device["peers"][0]["endpoint"] == "127.0.0.1:51899"
    assert outcome["listen_port"] == device["listen_port"] > 0, "the port the engine bound itself"
    assert broker.created[0] == pipes.uapi_path(NAME), "the engine's own pipe, wireguard-go's path"
