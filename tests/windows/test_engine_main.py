"""`wgdesk-engine -f NAME` as it starts on Windows: the real `wgdesk.engine.main.main` with the real
`WindowsPlatform` backend, faked only where Windows begins — the DLLs (`dlls.load`: a fake
``wintun.dll``, ``kernel32``, ``iphlpapi``), pywin32 (`Win32.load`: a scripted pipe client) and the
Windows-only socket options (`defaultroute.bind_socket`, whose bytes `test_defaultroute` checks).

The engine creates its Wintun adapter, serves UAPI on wireguard-go's pipe, pins its UDP sockets to
the physical interface (again after ``listen_port`` gives it new ones), runs the pure-Python data path
although the compiled one is built here, handshakes with a second real engine over loopback and moves
a packet from its adapter's ring to the peer's; the adapter going away ends it with exit status 0."""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.windows.fake_windows import DllShim, FakeIpHlpApi, FakeKernel32, FakeWin32, FakeWintun
from tests.windows.test_defaultroute import TUNNEL, V4, V6, machine
from tests.windows.test_engine_on_wintun import engine_on, ipv4
from wgdesk import platforms
from wgdesk.engine import main as engine_main
from wgdesk.platforms.windows import WindowsPlatform, defaultroute, dlls, pipes
from wgdesk.platforms.windows.pipe_connection import ERROR_BROKEN_PIPE, Win32
from wgdesk.proto.keys import generate_private_key, public_key, to_hex


class Windows:
    """The Windows boundary, faked: what the engine loads and what it asked for."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.kernel = FakeKernel32()
        self.wintun = FakeWintun(self.kernel)
        self.iphlpapi: FakeIpHlpApi = machine()
        tunnel = FakeWintun.LUID
        self.iphlpapi.routes = [r for r in self.iphlpapi.routes if r[1] != TUNNEL]
        self.iphlpapi.routes.append((V4, tunnel, 41, 0, 0))  # a full tunnel: best metric, but ours
        self.iphlpapi.interfaces[(tunnel, V4)] = (1420, 0, 0)
        self.iphlpapi.interfaces[(tunnel, V6)] = (1420, 0, 0)
        self.win32 = FakeWin32()
        self.pinned: list[tuple[int, int, int]] = []
        loaded: list[str | Path] = []
        self.loaded = loaded

        def load(name: str | Path) -> Any:
            loaded.append(name)
            if isinstance(name, Path):
                return DllShim(self.wintun)
            return {"kernel32": self.kernel, "iphlpapi": self.iphlpapi}[name]

        def pin(sock: socket.socket, family: int, index: int) -> None:
            self.pinned.append((sock.getsockname()[1], family, index))

        monkeypatch.setattr(dlls, "load", load)
        monkeypatch.setattr(dlls, "last_error", lambda: self.wintun.error)
        monkeypatch.setattr(Win32, "load", classmethod(lambda cls: self.win32.bundle()))
        monkeypatch.setattr(defaultroute, "bind_socket", pin)
        backend = WindowsPlatform()
        monkeypatch.setattr(platforms, "backend", lambda: backend)


def free_udp_port() -> int:
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s4,
        socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s6,
    ):
        s4.bind(("127.0.0.1", 0))
        port = int(s4.getsockname()[1])
        s6.bind(("::1", port))
        return port


def test_the_engine_main_path_on_windows(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    windows = Windows(monkeypatch)
    monkeypatch.setenv("LOG_LEVEL", "verbose")
    monkeypatch.setenv("WGDESK_PORTABLE", "1")  # as every OS but Linux chooses (fastpath.choose)
    for name in ("WG_TUN_FD", "WG_UAPI_FD", "WGDESK_UDP_FDS", "WGDESK_RUN_AS", "WGDESK_PURE_PYTHON"):
        monkeypatch.delenv(name, raising=False)
    peer, peer_wintun = engine_on("wgpeer")
    ours, theirs = generate_private_key(os.urandom), generate_private_key(os.urandom)
    peer.handle_uapi(
        f"set=1\nprivate_key={to_hex(theirs)}\npublic_key={to_hex(public_key(ours))}\nallowed_ip=10.9.0.1/32\n\n".encode()
    )
    port = free_udp_port()
    set_request = (
        f"set=1\nprivate_key={to_hex(ours)}\nlisten_port={port}\npublic_key={to_hex(public_key(theirs))}\n"
        f"endpoint=127.0.0.1:{peer.bind.port}\nallowed_ip=10.9.0.2/32\n\n"
    ).encode()
    windows.win32.clients = 1  # one UAPI client (wg.exe set, then show), then nobody
    windows.win32.incoming.extend([set_request, b"get=1\n\n", ERROR_BROKEN_PIPE])
    peer_thread = threading.Thread(target=peer.run, daemon=True)
    peer_thread.start()
    packet = ipv4(bytes([10, 9, 0, 1]), bytes([10, 9, 0, 2]), b"through the engine's main path")
    seen: list[str] = []

    def drive() -> None:
        try:
            deadline = time.monotonic() + 20
            while packet not in peer_wintun.sent and time.monotonic() < deadline:
                if b"".join(windows.win32.written).count(b"errno=0") >= 2:  # set answered, and get
                    windows.wintun.inject(packet)  # again until the handshake is done
                time.sleep(0.2)
            if packet in peer_wintun.sent:
                seen.append("crossed")
        finally:
            with windows.wintun.lock:
                windows.wintun.terminating = True  # the adapter is gone: the engine stops
            windows.kernel.SetEvent(windows.wintun.read_event)

    handlers = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    driver = threading.Thread(target=drive, daemon=True)
    driver.start()
    try:
        status = engine_main.main(["-f", "wgmain"])
    finally:
        signal.signal(signal.SIGTERM, handlers[0])
        signal.signal(signal.SIGINT, handlers[1])
        driver.join(30)
        peer.stop()
        peer_thread.join(10)

    assert status == 0
    assert seen == ["crossed"], "the packet did not come out of the peer's adapter"
    log = capsys.readouterr().out
    assert "pure-Python data path (the compiled path cannot read this system's tunnel device)" in log
    assert "Interface wgmain was deleted" in log

    # The adapter: created with the fixed GUID, a session started, all closed at the end.
    names = [name for name, _ in windows.wintun.calls]
    assert names[0] == "WintunCreateAdapter" and windows.wintun.calls[0][1][0] == "wgmain"
    assert names[-2:] == ["WintunEndSession", "WintunCloseAdapter"]
    assert not windows.wintun.outstanding, "every received packet released"

    # UAPI on wireguard-go's pipe path and descriptor; the answers of a real set and get.
    created = [c for c in windows.win32.calls if c[0] == "CreateNamedPipe"]
    assert created[0][1] == pipes.uapi_path("wgmain") and created[0][3] == pipes.UAPI_SDDL
    assert created[0][2] & pipes.FILE_FLAG_FIRST_PIPE_INSTANCE
    answers = b"".join(windows.win32.written).decode()
    assert answers.startswith("errno=0\n\n") and f"listen_port={port}\n" in answers
    assert f"public_key={to_hex(public_key(theirs))}\n" in answers and answers.endswith("errno=0\n\n")

    # UDP pinned to Ethernet (7; IPv6 only on Wi-Fi, 12), not to our own full tunnel (41): the first
    # sockets, then the ones listen_port replaced them with.
    assert len(windows.pinned) == 4
    first, second = windows.pinned[:2], windows.pinned[2:]
    assert [(f, i) for _, f, i in first] == [(V4, 7), (V6, 12)]
    assert second == [(port, V4, 7), (port, V6, 12)]
    assert first[0][0] != port
    assert ("NotifyRouteChange2", bytes([0, 0])) in windows.iphlpapi.calls
    assert windows.iphlpapi.calls[-1][0] == "CancelMibChangeNotify2", "route watch cancelled at the end"
    assert Path(sys.executable).with_name("wintun.dll") in windows.loaded, "wintun.dll beside the program"
