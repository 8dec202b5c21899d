"""`wgdeskctl up`/`down` on Windows as the helper carries them out: the real `TunnelManager` with the
real `WindowsPlatform`, faked only where Windows begins — the DLLs (`dlls.load`: ``iphlpapi``,
``fwpuclnt``), pywin32 (`Win32.load`: the client's end of the engine's UAPI pipe; the identity's
process calls) and the engine's process (``CreateProcess``, the `WindowsEngineHost` ``popen``).

The engine is scripted here (it cannot run its Wintun adapter here as a process of its own: the real
engine's Windows path is `test_engine_main.py`): it creates its adapter (its alias becomes known to
``iphlpapi``), then its pipe, answers UAPI like the real one, and takes both with it when it ends.

What must hold: the engine is started with nothing handed over, its pipe is awaited before the UAPI
set, and addresses, routes, the kill switch (WFP) and DNS go to the adapter's LUID afterwards; ``down``
undoes them in reverse and stops the engine last (the adapter goes with it); a full tunnel's default
routes and metric on that LUID. An engine that exits before its pipe appears, or on its configuration,
fails the bring-up with its status and last words, and nothing stays; an adapter with the tunnel's name
that is not its own gets nothing.
"""

from __future__ import annotations

import ctypes
import io
import os
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.windows.fake_windows import DllShim, Error, FakeClient, FakeFwpuclnt, FakeIpHlpApi, FakeKernel32
from tests.windows.test_defaultroute import TUNNEL, V4, V6, machine
from wgdesk import platforms
from wgdesk.helper import engine_process
from wgdesk.helper.errors import TunnelError
from wgdesk.helper.events import Events
from wgdesk.helper.logbook import LogBook
from wgdesk.helper.settings import Settings
from wgdesk.helper.tunnels import TunnelManager
from wgdesk.platforms.windows import WindowsPlatform, dlls, pipes
from wgdesk.platforms.windows.engine_host import WindowsEngineHost
from wgdesk.platforms.windows.identity import WindowsIdentity
from wgdesk.platforms.windows.pipe_connection import ERROR_BROKEN_PIPE, PipeUapiEndpoints, Win32
from wgdesk.platforms.windows.structures import (
    MIB_IPFORWARD_ROW2,
    MIB_IPINTERFACE_ROW,
    MIB_UNICASTIPADDRESS_ROW,
)
from wgdesk.platforms.windows.wintun import tunnel_guid
from wgdesk.proto.keys import generate_private_key, public_key, to_base64

NAME = "wgoffice"
LUID = 0x0035_0000_0200_0000  # IF_TYPE_PROP_VIRTUAL (53), as Wintun's adapters have
PEER = to_base64(public_key(generate_private_key(os.urandom)))
CONFIG = f"""[Interface]
PrivateKey = {to_base64(generate_private_key(os.urandom))}
Address = 10.9.0.2/32
DNS = 10.9.0.1, corp.example

[Peer]
PublicKey = {PEER}
Endpoint = 127.0.0.1:51899
AllowedIPs = 10.9.0.0/24
"""


class Timeline(list[str]):
    """What happened at the Windows boundary, in order, across every fake."""


class IpHelper(FakeIpHlpApi):
    def __init__(self, timeline: Timeline) -> None:
        super().__init__()
        self.timeline = timeline
        self.guids: dict[int, uuid.UUID] = {}
        set_dns = self.SetInterfaceDnsSettings

        def dns(guid: Any, settings: Any) -> int:
            timeline.append("SetInterfaceDnsSettings")
            return set_dns(guid, settings)

        self.SetInterfaceDnsSettings = dns

    def _record(self, name: str, row: Any) -> int:
        self.timeline.append(name)
        return super()._record(name, row)

    def ConvertInterfaceLuidToGuid(self, luid: Any, guid: Any) -> int:
        value = self.guids[luid._obj.Value]
        ctypes.memmove(ctypes.addressof(guid._obj), value.bytes_le, 16)
        return 0


class Wfp(FakeFwpuclnt):
    def __init__(self, timeline: Timeline) -> None:
        super().__init__()
        self.timeline = timeline

    def _status(self, name: str) -> int:
        if name == "FwpmTransactionCommit0":
            self.timeline.append("WFP commit")
        return super()._status(name)


class EnginePipe(FakeClient):
    """The client's end of the engine's UAPI pipe: missing until the engine created it; a request
    written is answered as the engine's UAPI server answers it."""

    def __init__(self, timeline: Timeline) -> None:
        super().__init__()
        self.timeline = timeline
        self.serving: str | None = None
        self.requests: list[str] = []
        self.dies_on_set: Any = None
        """An engine that exits on the configuration (instead of answering): its pipe breaks."""

    def WaitNamedPipe(self, path: str, milliseconds: int) -> None:
        self.calls.append(("WaitNamedPipe", path, milliseconds))
        if path != self.serving:
            raise self.error(2)
        if milliseconds == 1 and (not self.timeline or self.timeline[-1] != "pipe awaited"):
            self.timeline.append("pipe awaited")

    def CreateFile(self, path: str, *rest: Any) -> str:
        if path != self.serving:
            raise self.error(2)
        return "client"

    def WriteFile(self, handle: str, data: bytes, overlapped: Any) -> tuple[int, int]:
        request = data.decode()
        self.requests.append(request)
        self.timeline.append("UAPI " + request.split("=", 1)[0])
        if self.dies_on_set is not None and request.startswith("set=1"):
            self.dies_on_set._exit(1)
            self.incoming.append(ERROR_BROKEN_PIPE)
            return super().WriteFile(handle, data, overlapped)
        self.incoming.append(b"listen_port=51820\nerrno=0\n\n" if request == "get=1\n\n" else b"errno=0\n\n")
        return super().WriteFile(handle, data, overlapped)


class EngineProcess:
    """``wgdesk-engine -f NAME`` as `subprocess.Popen` shows it: it makes its adapter (Wintun gives it
    the tunnel's fixed GUID; the alias NAME unless another adapter has it), then its pipe (or,
    ``fails``, exits with status 1 and a last word first; ``dies_on_set``: exits on the UAPI set,
    its last word logged); terminated, it takes both with it."""

    def __init__(self, world: World, argv: list[str], fails: bool, dies_on_set: bool = False) -> None:
        self.world = world
        self.argv = argv
        self.pid = 4242
        self._handle = "process"
        self.returncode: int | None = None
        last_words = b"ERROR: Wintun: cannot create adapter (Access is denied)\n" if fails else b""
        if dies_on_set:
            last_words = b"ERROR: UAPI: listen_port 51820 is in use\n"
            world.pipe.dies_on_set = self
        self.stdout = io.BytesIO(last_words)  # its output pipe, read to the end once it has exited
        self._done = threading.Event()
        world.timeline.append("engine started")
        threading.Thread(target=self._run, args=(argv[2], fails), daemon=True).start()

    def _run(self, name: str, fails: bool) -> None:
        time.sleep(0.2)
        if fails:
            self._exit(1)
            return
        self.world.ip.guids[LUID] = tunnel_guid(name)
        self.world.ip.aliases.setdefault(name, LUID)
        self.world.ip.interfaces[(LUID, V4)] = self.world.ip.interfaces[(LUID, V6)] = (
            65535,
            25,
            1,
        )  # automatic metric
        self.world.timeline.append("adapter created")
        time.sleep(0.1)
        self.world.pipe.serving = pipes.uapi_path(name)

    def _exit(self, status: int) -> None:
        if self.world.ip.aliases.get(self.argv[2]) == LUID:
            del self.world.ip.aliases[self.argv[2]]
        self.world.pipe.serving = None
        self.returncode = status
        self._done.set()

    def poll(self) -> int | None:
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        self._done.wait(timeout)
        assert self.returncode is not None
        return self.returncode

    def terminate(self) -> None:  # TerminateProcess(handle, 1)
        self.world.timeline.append("engine stopped")
        self._exit(1)

    kill = terminate


class Job:
    def __init__(self, world: World) -> None:
        self.world = world

    def add(self, handle: Any) -> None:
        self.world.jobbed.append(handle)


class Processes:
    """pywin32's ``win32api``/``win32process`` for the identity's pid checks: ``dead`` pids cannot be
    opened (Windows: ``ERROR_INVALID_PARAMETER``)."""

    def __init__(self) -> None:
        self.dead: set[int] = set()

    def OpenProcess(self, access: int, inherit: bool, pid: int) -> str:
        if pid in self.dead:
            raise Error(87)
        return "process"

    def GetProcessTimes(self, handle: str) -> dict[str, Any]:
        import datetime

        return {"CreationTime": datetime.datetime(2026, 12, 8, tzinfo=datetime.UTC)}

    def CloseHandle(self, handle: str) -> None:
        return None

    def TerminateProcess(self, handle: str, status: int) -> None:
        raise AssertionError("the helper stops its own engine through Popen")


class World:
    def __init__(
        self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, fails: bool = False, dies_on_set: bool = False
    ) -> None:
        self.timeline = Timeline()
        self.ip = IpHelper(self.timeline)
        network = machine()  # Ethernet (MTU 1500) and Wi-Fi; no tunnel yet
        self.ip.routes = [r for r in network.routes if r[1] != TUNNEL]
        self.ip.interfaces = network.interfaces
        self.fwp = Wfp(self.timeline)
        self.pipe = EnginePipe(self.timeline)
        self.jobbed: list[Any] = []
        self.launched: list[tuple[list[str], dict[str, Any]]] = []
        self.engines: list[EngineProcess] = []
        self.squatter: int | None = None
        """An adapter that takes the tunnel's name as the engine starts."""
        kernel = FakeKernel32()

        def load(name: str | Path) -> Any:
            return {"iphlpapi": self.ip, "fwpuclnt": DllShim(self.fwp), "kernel32": kernel}[str(name)]

        def popen(argv: list[str], **kwargs: Any) -> EngineProcess:
            self.launched.append((argv, kwargs))
            if self.squatter is not None:
                self.ip.aliases[argv[2]] = self.squatter
            self.engines.append(EngineProcess(self, argv, fails, dies_on_set))
            return self.engines[-1]

        monkeypatch.setattr(dlls, "load", load)
        monkeypatch.setattr(Win32, "load", classmethod(lambda cls: self.pipe.bundle()))
        backend = WindowsPlatform()
        backend.engine = WindowsEngineHost(job=lambda: Job(self), popen=popen)  # type: ignore[arg-type,return-value]
        self.processes = Processes()
        backend.identity = WindowsIdentity(None, self.processes, self.processes)
        backend.uapi = PipeUapiEndpoints()  # the class's own keeps the first test's pywin32
        for module in (platforms, engine_process):  # never into `platforms.backend`'s cache
            monkeypatch.setattr(module, "backend", lambda: backend)
        monkeypatch.setattr(platforms, "create", lambda *args, **kwargs: backend)
        self.settings = Settings(
            engine_path=sys.executable,
            lockdown_file=str(tmp_path / "lockdown.json"),
            persistent_dir=str(tmp_path / "var"),  # not the (faked) machine's %ProgramData%
            allow_scripts=False,
        )
        self.manager = TunnelManager(self.settings, tmp_path / "state", LogBook(), Events())


def failed_up(w: World) -> str:
    """The error of a bring-up that must fail."""
    with pytest.raises(TunnelError) as failed:
        w.manager.up(NAME, CONFIG, full_tunnel=False, kill_switch=True)
    return str(failed.value)


def luids(rows: list[tuple[str, bytes]], name: str, kind: Any) -> list[int]:
    return [int(kind.from_buffer_copy(row).InterfaceLuid.Value) for call, row in rows if call == name]


def test_up_starts_the_engine_awaits_its_pipe_then_configures_by_luid_and_down_undoes_in_reverse(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    w = World(monkeypatch, tmp_path)
    up = w.manager.up(NAME, CONFIG, full_tunnel=False, kill_switch=True)
    assert (up["name"], up["interface"]) == (NAME, NAME)

    # the engine: started with nothing handed over, in the job; the helper waited for its pipe
    [(argv, kwargs)] = w.launched
    assert argv == [sys.executable, "-f", NAME]
    assert not {"WG_TUN_FD", "WG_UAPI_FD", "WGDESK_UDP_FDS"} & set(kwargs["env"])
    assert w.jobbed == ["process"]
    # one UAPI set with the key and peer, no fwmark (pinned, not marked), then a get
    set_request, get_request = w.pipe.requests
    assert set_request.startswith("set=1\nprivate_key=") and "fwmark" not in set_request
    assert "listen_port=" in set_request and "allowed_ip=10.9.0.0/24\n" in set_request
    assert get_request == "get=1\n\n"

    up_order = list(w.timeline)
    assert up_order[:5] == ["engine started", "adapter created", "pipe awaited", "UAPI set", "UAPI get"]
    rest = up_order[5:]
    assert rest.index("WFP commit") < rest.index("CreateUnicastIpAddressEntry")  # kill switch first
    assert rest.index("CreateUnicastIpAddressEntry") < rest.index("CreateIpForwardEntry2")
    assert rest[-1] == "SetInterfaceDnsSettings"

    # every change on the engine's adapter, by its LUID
    assert luids(w.ip.calls, "CreateUnicastIpAddressEntry", MIB_UNICASTIPADDRESS_ROW) == [LUID]
    assert luids(w.ip.calls, "CreateIpForwardEntry2", MIB_IPFORWARD_ROW2) == [LUID]
    assert [d[0] for d in w.ip.dns] == [tunnel_guid(NAME).bytes_le] * len(w.ip.dns), "the fixed GUID's"
    assert w.ip.dns[0][3] == "10.9.0.1" and w.ip.dns[0][4] == "corp.example"
    tunnel_rules = [f for f in w.fwp.added if ["uint64", LUID] in [c[2:] for c in f["conditions"]]]
    assert tunnel_rules and all(f["action"] == "permit" for f in tunnel_rules)
    mtus = [
        (row.InterfaceLuid.Value, row.NlMtu)
        for call, raw in w.ip.calls
        if call == "SetIpInterfaceEntry"
        for row in [MIB_IPINTERFACE_ROW.from_buffer_copy(raw)]
    ]
    assert mtus == [(LUID, 1420), (LUID, 1420)], "1500 (Ethernet, the pinned route) less 80, both families"
    tunnel = w.manager.tunnels[NAME]
    assert (tunnel.ifname, tunnel.listen_port, tunnel.engine is not None) == (NAME, 51820, True)

    del w.timeline[:]
    w.manager.down(NAME)
    down = list(w.timeline)
    # DNS cleared, routes and addresses deleted, the kill switch gone, then the engine (and its adapter)
    assert down.index("SetInterfaceDnsSettings") < down.index("DeleteIpForwardEntry2")
    assert down.index("DeleteIpForwardEntry2") < down.index("DeleteUnicastIpAddressEntry")
    assert down.index("DeleteUnicastIpAddressEntry") < down.index("WFP commit")
    assert down[-1] == "engine stopped"
    assert NAME not in w.ip.aliases and w.pipe.serving is None
    assert not w.fwp.present, "no filter left"
    assert not list((tmp_path / "state" / "journal").iterdir()), "journal gone"


def test_an_engine_that_exits_before_its_pipe_appears_fails_the_bring_up_and_leaves_nothing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    w = World(monkeypatch, tmp_path, fails=True)
    message = failed_up(w)
    assert "the engine exited with status 1" in message
    assert "cannot create adapter (Access is denied)" in message
    assert w.timeline == ["engine started"], "nothing configured, nothing to undo but the engine"
    assert not w.pipe.requests and not w.fwp.added
    assert any(c[0] == "WaitNamedPipe" for c in w.pipe.calls), "the pipe was waited for"
    assert NAME not in w.manager.tunnels
    assert not list((tmp_path / "state" / "journal").iterdir()), "rolled back: journal gone"


def test_a_full_tunnel_routes_everything_by_the_adapters_metric_and_down_restores_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    w = World(monkeypatch, tmp_path)
    config = CONFIG.replace("AllowedIPs = 10.9.0.0/24", "AllowedIPs = 0.0.0.0/0, ::/0")
    up = w.manager.up(NAME, config, full_tunnel=True, kill_switch=True)
    assert up["full_tunnel"] is True
    routes = [
        (row.InterfaceLuid.Value, row.DestinationPrefix.PrefixLength)
        for call, raw in w.ip.calls
        if call == "CreateIpForwardEntry2"
        for row in [MIB_IPFORWARD_ROW2.from_buffer_copy(raw)]
    ]
    assert routes == [(LUID, 0), (LUID, 0)], "both default routes in Windows' one table, on the adapter"
    interface_rows = [
        MIB_IPINTERFACE_ROW.from_buffer_copy(raw) for call, raw in w.ip.calls if call == "SetIpInterfaceEntry"
    ]
    metric_rows = [
        (r.InterfaceLuid.Value, r.Family, r.Metric) for r in interface_rows if not r.UseAutomaticMetric
    ]
    assert sorted(metric_rows) == [(LUID, V4, 0), (LUID, V6, 0)], "the adapter's metric 0 makes them win"
    assert "fwmark" not in w.pipe.requests[0]

    w.ip.calls.clear()
    w.manager.down(NAME)
    restored = [
        (r.InterfaceLuid.Value, r.Family, r.Metric, r.UseAutomaticMetric)
        for call, raw in w.ip.calls
        if call == "SetIpInterfaceEntry"
        for r in [MIB_IPINTERFACE_ROW.from_buffer_copy(raw)]
    ]
    assert sorted(restored) == [(LUID, V4, 25, 1), (LUID, V6, 25, 1)], "automatic metric again"
    assert [c for c, _ in w.ip.calls].count("DeleteIpForwardEntry2") == 2
    assert w.timeline[-1] == "engine stopped"


def test_an_adapter_of_that_name_that_is_not_the_tunnels_gets_nothing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    w = World(monkeypatch, tmp_path)
    other = 0x0035_0000_0300_0000  # another Wintun adapter (another VPN's) with our name
    w.ip.guids[other] = uuid.uuid4()
    w.ip.aliases[NAME] = other
    with pytest.raises(TunnelError, match=f"an interface named {NAME} already exists"):
        w.manager.up(NAME, CONFIG, full_tunnel=False, kill_switch=True)
    assert w.timeline == [], "refused before the engine starts"

    del w.ip.aliases[NAME]
    w.squatter = other  # this time it takes the name while our engine starts
    with pytest.raises(TunnelError, match=f"the adapter named {NAME} is not this tunnel's"):
        w.manager.up(NAME, CONFIG, full_tunnel=False, kill_switch=True)
    assert w.timeline == ["engine started", "adapter created", "pipe awaited", "engine stopped"]
    assert not w.pipe.requests and not w.fwp.added, "nothing configured, on either adapter"
    assert w.ip.aliases == {NAME: other}, "the other adapter untouched"
    assert not list((tmp_path / "state" / "journal").iterdir())


def test_an_engine_that_exits_on_its_configuration_is_reported_with_its_last_words(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    w = World(monkeypatch, tmp_path, dies_on_set=True)
    message = failed_up(w)
    last_words = "ERROR: UAPI: listen_port 51820 is in use"
    assert message == f"could not bring {NAME} up: the engine exited with status 1: {last_words}"
    assert w.timeline == ["engine started", "adapter created", "pipe awaited", "UAPI set"]
    assert not w.fwp.added and NAME not in w.ip.aliases
    assert not list((tmp_path / "state" / "journal").iterdir())


def test_a_crashed_helpers_tunnel_keeps_its_kill_switch_and_loses_its_dns(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    w = World(monkeypatch, tmp_path)
    w.manager.up(NAME, CONFIG, full_tunnel=False, kill_switch=True)
    blocks = {f["key"] for f in w.fwp.added if f["action"] == "block"}
    through_tunnel = {f["key"] for f in w.fwp.added if ["uint64", LUID] in [c[2:] for c in f["conditions"]]}
    assert blocks <= w.fwp.present and through_tunnel <= w.fwp.present and blocks and through_tunnel
    # the helper dies: its job ends the engine, and with it the adapter and the pipe
    [engine] = w.engines
    engine._exit(1)
    w.processes.dead.add(engine.pid)
    w.ip.dns.clear()
    del w.timeline[:]

    again = TunnelManager(w.settings, tmp_path / "state", LogBook(), Events())
    again.recover()
    # DNS settings belong to the adapter's fixed GUID and would outlive it: cleared
    assert w.ip.dns and all(d[0] == tunnel_guid(NAME).bytes_le and d[3] in ("", "<null>") for d in w.ip.dns)
    # nothing else to undo on a gone adapter; the persistent kill switch keeps blocking, and lets
    # nothing out through the gone adapter (a found LUID could be reused by the next adapter)
    assert "DeleteUnicastIpAddressEntry" not in w.timeline and "DeleteIpForwardEntry2" not in w.timeline
    assert again.tunnels[NAME].state.value == "blocked"
    assert blocks <= w.fwp.present and not through_tunnel & w.fwp.present
    again.down(NAME)
    assert not w.fwp.present, "down of the blocked tunnel lifts the kill switch"
    assert not list((tmp_path / "state" / "journal").iterdir())
