"""`wgdeskctl up`/`down` on macOS as the helper carries them out: the real `TunnelManager` (its
`bringup.STEPS`, its journal, rollback and recovery) with the real `DarwinPlatform`, faked only where
macOS begins — the fake Mac (`tests.darwin.fakemac`: ``ifconfig``, ``route``, ``netstat``, ``scutil``,
``pfctl``, ``ps``), the utun's kernel-control socket (the opener hands out one end of an ``AF_UNIX``
``SOCK_SEQPACKET`` socketpair and names it ``utunN``, as `tests.darwin.utun_standin` does; the other end is
the "kernel", and when the engine's end closes the interface goes, as a utun does) and
``if_nametoindex`` (which interfaces exist: the fake Mac's).

The engine is the real one (`wgdesk.engine.main`, started by the helper as a process with the utun
descriptor, its UAPI listener and its UDP sockets) on a `DarwinTun` over that descriptor: it answers
the helper's UAPI set and get on ``utunN.sock``. Its peer's endpoint is on loopback and it sends no
traffic (no keepalive, no packet from the "kernel").

What must hold: every kernel-facing command names ``utunN``, never the tunnel's name; the
``NAME.name`` record and ``utunN.sock`` exist; the steps run in the helper's order; ``down`` leaves
the fake Mac exactly as it started; a failure of any changing command during ``up`` is rolled back
completely with a clear error; after a crash, a new helper's ``recover`` keeps the kill switch
blocking under ``utunN`` and ``down`` lifts it.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.darwin.fakemac import FakeMac
from wgdesk import platforms
from wgdesk.helper import bringup, engine_process
from wgdesk.helper.errors import TunnelError
from wgdesk.helper.events import Events
from wgdesk.helper.logbook import LogBook
from wgdesk.helper.settings import Settings
from wgdesk.helper.tunnels import TunnelManager
from wgdesk.platforms.darwin import DarwinPlatform
from wgdesk.platforms.interface import PlatformOptions
from wgdesk.platforms.unix.uapi import UnixUapiEndpoints
from wgdesk.proto.keys import generate_private_key, public_key, to_base64

pytestmark = pytest.mark.root  # the helper runs as root (its engine here too: engine_user = root)

NAME = "office"
UTUN = "utun7"
KILLSWITCH = "com.apple/250.wgdesk.killswitch"
REPO = Path(__file__).resolve().parents[2]
PEER = to_base64(public_key(generate_private_key(os.urandom)))
CONFIG = f"""[Interface]
PrivateKey = {to_base64(generate_private_key(os.urandom))}
Address = 10.8.0.2/32, fd00:8::2/128
DNS = 10.8.0.1, corp.example

[Peer]
PublicKey = {PEER}
Endpoint = 127.0.0.1:51899
AllowedIPs = 0.0.0.0/0, ::/0

[Peer]
PublicKey = {to_base64(public_key(generate_private_key(os.urandom)))}
AllowedIPs = 10.9.0.0/24
"""
ENGINE = f"""#!{sys.executable}
# The real engine with the macOS tun driver's DarwinTun over the descriptor the helper hands it.
import sys
sys.path.insert(0, {str(REPO)!r})
from tests.darwin.utun_standin import StandinDriver
from wgdesk import platforms
from wgdesk.engine.main import main
platforms.backend().tun = StandinDriver(sys.argv[2])
sys.exit(main(sys.argv[1:]))
"""


MANAGERS: list[TunnelManager] = []
"""Every manager of the running test: a failed assertion leaves no engine running."""


@pytest.fixture(autouse=True)
def _stop_engines() -> Iterator[None]:
    yield
    for manager in MANAGERS:
        for tunnel in manager.tunnels.values():
            if tunnel.engine is not None:
                tunnel.engine.stop()
    MANAGERS.clear()


class Mac(FakeMac):
    """The fake Mac with the interfaces it has (for ``if_nametoindex``) and a timeline that
    interleaves its commands with the helper's UAPI requests."""

    def __init__(self, fail_at: int | None = None) -> None:
        super().__init__(fail_at=fail_at)
        self.timeline: list[str] = []

    def __call__(self, argv: Any, stdin: str | None = None, check: bool = True) -> Any:
        self.timeline.append(" ".join(argv))
        return super().__call__(argv, stdin, check)

    def _ps(self, args: list[str], stdin: str | None) -> tuple[int, str, str]:
        """``ps -p PID -o lstart=``: the engine is a real process here (procps prints the same)."""
        proc = subprocess.run(["ps", *args], capture_output=True, text=True, check=False)
        return proc.returncode, proc.stdout, proc.stderr


class World:
    """The fake Mac, the helper's backend on it, and the manager (a new one after a "crash")."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, fail_at: int | None = None) -> None:
        self.tmp = tmp_path
        tmp_path.mkdir(parents=True, exist_ok=True)
        self.mac = Mac(fail_at)
        self.before = self.mac.snapshot()
        self.run_dir = tmp_path / "wireguard"  # /var/run/wireguard: NAME.name and utunN.sock
        self.kernel_ends: list[socket.socket] = []
        engine = tmp_path / "wgdesk-engine"
        engine.write_text(ENGINE)
        engine.chmod(0o755)
        self.settings = Settings(
            engine_path=str(engine),
            engine_user="root",  # no engine account on this machine: the engine runs as the test
            lockdown_file=str(tmp_path / "lockdown.json"),
            persistent_dir=str(tmp_path / "var"),
            allow_scripts=False,
        )
        real_index = socket.if_nametoindex

        def if_nametoindex(name: str) -> int:
            if name in self.mac.state.mtu:
                return 100 + int(name.removeprefix("utun"))
            if name.startswith("utun"):
                raise OSError(6, "Device not configured")
            return real_index(name)

        monkeypatch.setattr(socket, "if_nametoindex", if_nametoindex)
        self.monkeypatch = monkeypatch
        real_uapi_request = engine_process.uapi_request  # what `bringup` imported

        def uapi_request(ifname: str, request: str, *args: Any, **kwargs: Any) -> list[str]:
            self.mac.timeline.append(f"UAPI {request.split(chr(10), 1)[0]} {ifname}")
            return real_uapi_request(ifname, request, *args, **kwargs)

        monkeypatch.setattr(bringup, "uapi_request", uapi_request)  # a spy: the request goes through
        self.manager = self.new_manager()

    def opener(self, unit: int) -> tuple[int, str]:
        """The utun's kernel-control socket: the engine's end and ``utunN``; the kernel's end
        notices when the engine's closes and the interface goes with it."""
        # SEQPACKET, not the stand-in's DGRAM: packets keep their boundaries just the same, and the
        # kernel's end reads end-of-file once the engine's last descriptor is closed (a DGRAM pair
        # does not tell), as a utun goes with its last descriptor
        engine_end, kernel_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.kernel_ends.append(kernel_end)
        self.mac.utun_created(UTUN)
        self.mac.timeline.append(f"utun created {UTUN}")

        def kernel() -> None:
            try:
                while kernel_end.recv(65536):
                    pass
            except OSError:
                pass
            self.mac.utun_closed(UTUN)

        threading.Thread(target=kernel, daemon=True).start()
        return engine_end.detach(), UTUN

    def new_platform(self) -> DarwinPlatform:
        platform = DarwinPlatform(
            PlatformOptions(state_dir=self.tmp / "state", persistent_dir=self.tmp / "var"),
            runner=self.mac,
            run_dir=self.run_dir,
            follows_network=False,
            boot_rules=self.tmp / "boot-block.pf",
        )
        platform.tunnels.opener = self.opener
        platform.uapi = UnixUapiEndpoints(self.run_dir)
        return platform

    def new_manager(self) -> TunnelManager:
        """A helper starting (again): a backend of its own over the same Mac and state dir."""
        platform = self.new_platform()
        for module in (platforms, engine_process):
            self.monkeypatch.setattr(module, "backend", lambda: platform)
        self.monkeypatch.setattr(platforms, "create", lambda *args, **kwargs: platform)
        self.platform = platform
        manager = TunnelManager(self.settings, self.tmp / "state", LogBook(), Events())
        MANAGERS.append(manager)
        return manager

    def up(self) -> dict[str, Any]:
        return self.manager.up(NAME, CONFIG, full_tunnel=True, kill_switch=True)

    def gone(self) -> bool:
        """The utun is gone (the engine's descriptor closed) and the Mac is as it started."""
        return self.mac.snapshot() == self.before


def wait_for(condition: Callable[[], bool], seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def step_of(line: str) -> str | None:
    """Which bring-up step a line of the timeline belongs to (None: a read, not a change)."""
    if line.startswith("utun created"):
        return "device"
    if line.startswith("UAPI set=1"):
        return "engine configuration"
    if " -a com.apple/249.wgdesk.guard." in line and line.endswith(" -f -"):
        return "full-tunnel pf"
    if " -a com.apple/250.wgdesk.killswitch -f -" in line:
        return "kill switch"
    if line.startswith("/sbin/ifconfig ") and len(line.split()) > 2:
        return "addresses"
    if line.startswith("/sbin/route -q -n add") and ("/1 -interface" in line or "-gateway" in line):
        return "full tunnel"
    if line.startswith("/sbin/route -q -n add"):
        return "routes"
    if line == "/usr/sbin/scutil":
        return "DNS?"
    return None


def steps(timeline: list[str], mac: FakeMac) -> list[str]:
    """The order in which the steps first changed something."""
    sets = {i for i, (argv, stdin) in enumerate(mac.log) if stdin and "\nset " in "\n" + stdin}
    order: list[str] = []
    command = -1
    for line in timeline:
        step = step_of(line)
        if not line.startswith(("utun created", "UAPI ")):
            command += 1
        if step == "DNS?":
            step = "DNS" if command in sets else None
        if step is not None and step not in order:
            order.append(step)
    return order


def engine_ends(w: World) -> None:
    assert wait_for(lambda: w.mac.snapshot() == w.before), (
        "the Mac as it started",
        w.mac.snapshot(),
        w.before,
    )


def test_up_configures_utun_in_the_helpers_order_and_down_restores_the_mac(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    w = World(monkeypatch, tmp_path)
    up = w.up()
    assert (up["name"], up["interface"]) == (NAME, UTUN)
    tunnel = w.manager.tunnels[NAME]
    assert tunnel.ifname == UTUN and tunnel.engine is not None and tunnel.engine.alive()
    assert (w.run_dir / f"{NAME}.name").read_text() == f"{UTUN}\n", "wg show office finds utun7"
    assert (w.run_dir / f"{UTUN}.sock").is_socket(), "the engine's UAPI socket is named after the utun"
    assert not (w.run_dir / f"{NAME}.sock").exists()
    # the real engine took the configuration: its UAPI get shows the peer
    device = engine_process.uapi_get(UTUN)
    assert sorted(p["allowed_ips"] for p in device["peers"]) == [["0.0.0.0/0", "::/0"], ["10.9.0.0/24"]]
    assert device["listen_port"] == tunnel.listen_port != 0

    # every kernel-facing command names utun7, none the tunnel's name
    changing = [argv for argv, _ in w.mac.log if argv[0] != "/usr/sbin/scutil"]
    assert changing and not [a for a in changing if NAME in " ".join(a)]
    interface_commands = [a for a in changing if a[0] == "/sbin/ifconfig" or "-interface" in a]
    assert interface_commands and all(UTUN in a for a in interface_commands)
    anchors = w.mac.state.anchors
    assert f"pass quick on {UTUN} all" in anchors[KILLSWITCH], "the kill switch lets utun7 out"
    assert f"on ! {UTUN} " in anchors[f"com.apple/249.wgdesk.guard.{UTUN}"], "the guard is utun7's"
    assert not [rules for rules in anchors.values() if f" {NAME} " in rules or f" {NAME}\n" in rules]
    assert f"UAPI set=1 {UTUN}" in w.mac.timeline

    assert steps(w.mac.timeline, w.mac) == [
        "device",
        "full-tunnel pf",
        "engine configuration",
        "kill switch",
        "addresses",
        "routes",
        "full tunnel",
        "DNS",
    ]
    state = w.mac.state
    assert state.addresses[UTUN] == {"10.8.0.2", "fd00:8::2"} and UTUN in state.up
    assert {("0.0.0.0/1", f"interface {UTUN}"), ("8000::/1", f"interface {UTUN}")} <= state.routes
    assert ("10.9.0.0/24", f"interface {UTUN}") in state.routes
    assert not [r for r in state.routes if r[0] in ("0.0.0.0/0", "::/0", "127.0.0.1")], (
        "no default route (the halves carry it), no host route to a loopback endpoint"
    )
    dns = state.store["State:/Network/Service/8A2C3F5E-0D41-4C6B-9E3A-1F2B3C4D5E6F/DNS"]
    assert dns["ServerAddresses"] == ["10.8.0.1"] and dns["SearchDomains"] == ["corp.example"]

    engine = tunnel.engine
    w.manager.down(NAME)
    assert engine.proc.returncode is not None, "the engine stopped"
    engine_ends(w)
    assert sorted(p.name for p in w.run_dir.iterdir()) == [], "no name record, no UAPI socket"
    assert not list((tmp_path / "state" / "journal").iterdir()), "journal gone"
    assert not w.mac.state.tokens and not w.mac.state.anchors


def test_a_failure_of_any_change_during_up_is_rolled_back(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    counting = World(monkeypatch, tmp_path / "count")
    counting.up()
    total = counting.mac.changes
    counting.manager.down(NAME)
    engine_ends(counting)
    assert total >= 14, "pf 4, ifconfig 4, routes 1 + 4 halves, scutil 1"
    for index in range(total):
        w = World(monkeypatch, tmp_path / str(index), fail_at=index)
        with pytest.raises(TunnelError) as failed:
            w.up()
        failing = " ".join(w.mac.log[-1][0])
        message = str(failed.value)
        assert message.startswith(f"could not bring {NAME} up: "), message
        assert "injected failure" in message, (index, failing, message)
        assert NAME not in w.manager.tunnels
        assert wait_for(w.gone), (index, failing, w.mac.snapshot(), w.before)
        assert list(w.run_dir.iterdir()) == [], (index, failing)
        assert not list((w.tmp / "state" / "journal").iterdir()), (index, failing)


def test_a_crashed_helpers_kill_switch_keeps_blocking_under_utun_until_down(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    w = World(monkeypatch, tmp_path)
    w.up()
    rules = w.mac.state.anchors[KILLSWITCH]
    port = w.manager.tunnels[NAME].listen_port
    assert f"pass quick on {UTUN} all" in rules and f"from any port {port} to any" in rules
    engine = w.manager.tunnels[NAME].engine
    assert engine is not None
    # the helper dies (its state with it); the engine, in a session of its own, is left running
    crashed_pid = engine.pid
    again = w.new_manager()
    again.recover()
    assert wait_for(lambda: engine.proc.poll() is not None), "recovery stopped the recorded engine"
    assert crashed_pid == engine.pid
    assert wait_for(lambda: UTUN not in w.mac.state.mtu), "the utun went with it"
    blocked = again.tunnels[NAME]
    assert blocked.state.value == "blocked" and blocked.ifname == UTUN
    assert again.lockdown.members[NAME].ifname == UTUN
    anchors = w.mac.state.anchors
    assert KILLSWITCH in anchors and w.mac.state.tokens and (tmp_path / "boot-block.pf").exists()
    assert anchors[KILLSWITCH].endswith("block drop quick all\n"), anchors[KILLSWITCH]
    # nothing passes through the gone utun7 (the next utun anyone opens may be utun7) nor from its
    # dead engine's port
    assert UTUN not in anchors[KILLSWITCH] and f"port {port}" not in anchors[KILLSWITCH]
    assert not [k for k in anchors if "guard" in k], "the full tunnel's guard went with the utun"
    assert w.mac.state.routes == w.before.routes and w.mac.state.store == w.before.store
    assert list(w.run_dir.iterdir()) == []
    again.down(NAME)
    assert w.mac.snapshot() == w.before, "down of the blocked tunnel lifts the kill switch"
    assert not list((tmp_path / "state" / "journal").iterdir())
