"""`wgdesk-engine [-f] IFNAME` behaves like wireguard-go's command line (run in test namespaces)."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.interop.wgnet import INNER4, WGDESK_ENGINE, WgInterface, build, engine_env
from tests.netns import IP, Namespace, namespaces, socket_path, unique_name, wait_for

pytestmark = pytest.mark.root

LAUNCHER = str(Path(__file__).with_name("unprivileged_launcher.py"))
LOG_LINE = re.compile(r"^(DEBUG|ERROR): \((?P<ifname>[^)]+)\) \d{4}/\d\d/\d\d \d\d:\d\d:\d\d \S")


@pytest.fixture
def ns() -> Iterator[Namespace]:
    with namespaces("we") as (n,):
        yield n


def link_exists(ns: Namespace, name: str) -> bool:
    return ns.exec(IP, "link", "show", name, check=False).returncode == 0


def engine_pids(ns: Namespace) -> list[int]:
    return [p for p in ns.pids() if Path(f"/proc/{p}").exists()]


def test_usage_errors_exit_1() -> None:
    for argv in ([], ["-x", "wg0"], ["a", "b"], ["-f"]):
        result = subprocess.run([WGDESK_ENGINE, *argv], capture_output=True, text=True, timeout=30)
        assert result.returncode == 1, argv
        assert "Usage: wgdesk-engine [-f/--foreground] INTERFACE-NAME" in result.stderr


def test_version() -> None:
    result = subprocess.run([WGDESK_ENGINE, "--version"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0
    assert result.stdout.startswith("wgdesk-engine v")


def test_daemonises_and_exits_when_the_interface_is_deleted(ns: Namespace) -> None:
    name = unique_name("wg")
    env = {k: v for k, v in os.environ.items() if k not in ("WG_PROCESS_FOREGROUND", "LOG_LEVEL")}
    started = time.monotonic()
    result = ns.exec(WGDESK_ENGINE, name, env=env, timeout=30)
    assert result.returncode == 0
    assert time.monotonic() - started < 10
    # Both exist the moment the parent returns: wg-quick configures the interface right away.
    assert link_exists(ns, name)
    assert socket_path(name).exists()
    assert ns.exec(IP, "-o", "link", "show", name).stdout.count("mtu 1420") == 1
    pids = engine_pids(ns)
    assert len(pids) == 1
    assert os.getsid(pids[0]) == pids[0]  # its own session, detached from ours
    assert f"interface: {name}" in ns.exec("wg", "show", name).stdout
    ns.exec(IP, "link", "del", name)
    assert wait_for(lambda: not engine_pids(ns), 10)
    assert not socket_path(name).exists()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_cleanly(ns: Namespace, sig: signal.Signals, tmp_path: Path) -> None:
    iface = WgInterface(ns, "wgdesk", tmp_path)
    iface.up()
    assert iface.stop(sig) == 0
    assert not socket_path(iface.name).exists()
    assert not link_exists(ns, iface.name)
    log = iface.log()
    assert "Device closed" in log
    assert all(LOG_LINE.match(line) for line in log.splitlines()), log


@pytest.mark.parametrize(("level", "expect_debug"), [("verbose", True), ("error", False), ("silent", False)])
def test_log_level(ns: Namespace, level: str, expect_debug: bool, tmp_path: Path) -> None:
    iface = WgInterface(ns, "wgdesk", tmp_path, env={"LOG_LEVEL": level})
    iface.set("private-key", str(iface.key_file))
    # A bad request is an error at every level but silent.
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.connect(str(socket_path(iface.name)))
        s.sendall(b"set=1\nlisten_port=http\n\n")
        assert s.recv(100) == b"errno=-22\n\n"
    iface.stop()
    lines = iface.log().splitlines()
    assert all(LOG_LINE.match(line) for line in lines), lines
    assert any(line.startswith("DEBUG:") for line in lines) is expect_debug
    assert any(line.startswith("ERROR:") for line in lines) is (level != "silent")
    if expect_debug:
        assert any("UAPI: Updating private key" in line for line in lines)


def test_uapi_errors_answer_with_errno(ns: Namespace, tmp_path: Path) -> None:
    iface = WgInterface(ns, "wgdesk", tmp_path)

    def ask(request: bytes) -> bytes:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(10)
            s.connect(str(socket_path(iface.name)))
            s.sendall(request)
            data = b""
            while data.count(b"errno=") < request.count(b"=1\n"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
            return data

    assert ask(b"set=1\nprivate_key=zz\n\n") == b"errno=-22\n\n"
    assert ask(b"set=1\nnonsense\n\n") == b"errno=-71\n\n"  # EPROTO: line without '='
    assert ask(b"frobnicate=1\n\n") == b"errno=-71\n\n"
    assert ask(b"set=1\nlisten_port=0\n\nget=1\n\n").startswith(b"errno=0\n\nlisten_port=")
    assert ask(b"get=1\n\n").endswith(b"errno=0\n\n")
    assert iface.alive()


def test_second_engine_for_the_same_interface_is_refused(ns: Namespace, tmp_path: Path) -> None:
    first = WgInterface(ns, "wgdesk", tmp_path)
    result = ns.exec(WGDESK_ENGINE, "-f", first.name, env=engine_env(), check=False, timeout=30)
    assert result.returncode == 1
    assert "ERROR:" in result.stdout
    assert first.alive()
    assert f"interface: {first.name}" in first.show()


def test_stale_socket_is_replaced(ns: Namespace) -> None:
    name = unique_name("wg")
    socket_path(name).parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(socket_path(name)))
    dead.close()
    proc = ns.popen(WGDESK_ENGINE, "-f", name, env=engine_env(), stdout=subprocess.DEVNULL)
    try:
        assert wait_for(lambda: ns.exec("wg", "show", name, check=False).returncode == 0, 15)
    finally:
        proc.terminate()
        proc.wait(10)
    assert not socket_path(name).exists()


@pytest.mark.parametrize("io_thread", ["0", "1"])
def test_unprivileged_engine_with_handed_over_descriptors(tmp_path: Path, io_thread: str) -> None:
    """The helper's hand-off: TUN, UAPI socket and marked UDP opened privileged; the engine has none —
    in every thread, also the compiled path's writer thread (started after the drop)."""
    workdir = tmp_path
    with namespaces("wu", "wv") as (na, nb):
        topo = build(
            na,
            nb,
            "wgdesk",
            "go",
            workdir,
            endpoints=(0,),
            launcher_a=[sys.executable, LAUNCHER],
            env_a={
                "LAUNCH_MARK": "0x77",
                "LAUNCH_PORT": "51820",
                "PYTHONPATH": str(Path(__file__).parents[2]),
                "WGDESK_IO_THREAD": io_thread,
            },
        )
        try:
            # a burst of 30 pings: batches big enough to be handed to the writer thread
            na.exec("ping", "-n", "-q", "-c", "30", "-l", "30", "-W", "5", INNER4[1], check=False)
            tasks = list(Path(f"/proc/{topo.a.proc.pid}/task").iterdir())
            assert len(tasks) == (2 if io_thread == "1" else 1), tasks
            for task in tasks:
                status = (task / "status").read_text()
                for caps in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
                    assert re.search(rf"^{caps}:\s+0+$", status, re.M), (task, status)
                assert re.search(r"^NoNewPrivs:\s+1$", status, re.M), (task, status)
            status = Path(f"/proc/{topo.a.proc.pid}/status").read_text()
            assert "wgdesk-engine" in Path(f"/proc/{topo.a.proc.pid}/cmdline").read_text()
            for caps in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
                assert re.search(rf"^{caps}:\s+0+$", status, re.M), status
            assert re.search(r"^Uid:\s+65534\s+65534\s+65534\s+65534$", status, re.M), status
            assert re.search(r"^NoNewPrivs:\s+1$", status, re.M), status
            topo.ping(0, INNER4[1])
            assert topo.a.show("fwmark").strip() == "0x77"
            # The handed-over socket (fixed by the helper) stays; changes needing privileges are refused.
            refused = topo.a.set("listen-port", "80", check=False)
            assert refused.returncode != 0 and "Operation not permitted" in refused.stderr
            assert topo.a.show("listen-port").strip() == "51820"
            refused = topo.a.set("fwmark", "0x99", check=False)
            assert refused.returncode != 0 and "Operation not permitted" in refused.stderr
            topo.ping(0, INNER4[1])
        finally:
            topo.a.stop()
            topo.b.stop()
            # as uid 65534 it cannot unlink its socket in root's /var/run/wireguard: the helper, which
            # created it, removes it (journal entry uapi_socket), as this test does
            assert topo.a.proc.returncode == 0
            socket_path(topo.a.name).unlink()
