"""The engine's UDP tied to the physical interface on macOS, and tied again after network changes
(`wgdesk.platforms.darwin.boundif`).

``IP_BOUND_IF`` does not exist on Linux, so the OS boundary — ``setsockopt``, the answers of
``route -n get`` and the routing socket — is faked: the fake records each call, and the tests assert
the exact (socket, level, option, bytes) sequence. The network changes are routing messages built by
hand from ``<net/route.h>`` (``rt_msghdr`` starts with ``rtm_msglen``, ``rtm_version`` 5, ``rtm_type``;
never compared with a Mac's), fed directly or through a socketpair standing in for the routing
socket. The last test runs the real engine loop with the guard and checks it keeps serving while
the sockets are re-tied by the watch thread, one of the calls failing."""

from __future__ import annotations

import errno
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from tests.darwin.test_parsers import fixture
from tests.netns import wait_for
from wgdesk.engine.bind import Bind
from wgdesk.engine.loop import Engine
from wgdesk.platforms.darwin import DarwinPlatform
from wgdesk.platforms.darwin.boundif import BoundIfPinning, DefaultInterfaces, bound_if_option
from wgdesk.platforms.darwin.engine import DarwinEngineIO
from wgdesk.platforms.darwin.netwatch import QUIET, RoutingSocketWatch, relevant_messages
from wgdesk.platforms.darwin.utun import DarwinTun

V4, V6 = socket.AF_INET, socket.AF_INET6
IPPROTO_IP, IPPROTO_IPV6 = 0, 41
"""Written out (<netinet/in.h>), not taken from the module under test."""


def u32(n: int) -> bytes:
    return struct.pack("=I", n)


def test_the_options_are_apples_values_with_a_host_order_int() -> None:
    assert bound_if_option(V4, 6) == (IPPROTO_IP, 25, u32(6))
    assert bound_if_option(V6, 6) == (IPPROTO_IPV6, 125, u32(6))
    assert bound_if_option(V4, 0) == (IPPROTO_IP, 25, b"\0\0\0\0")  # unties


class FakeRouteGet:
    """``route -n get [-inet6] default`` answering what ``routes`` says (interface names)."""

    def __init__(self) -> None:
        self.routes: dict[int, str | None] = {V4: "en0", V6: "en0"}
        self.calls: list[list[str]] = []

    def __call__(
        self, argv: Sequence[str], stdin: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        self.calls.append(list(argv))
        interface = self.routes[V6 if "-inet6" in argv else V4]
        if interface is None:
            return subprocess.CompletedProcess(
                list(argv), 1, "", "route: writing to routing socket: not in table"
            )
        text = fixture("route-get-default.txt").replace("en0", interface)
        return subprocess.CompletedProcess(list(argv), 0, text, "")


INDEXES = {"en0": 4, "en1": 5, "en7": 11}


def index_of(name: str) -> int:
    if name not in INDEXES:
        raise OSError(errno.ENXIO, "Device not configured")
    return INDEXES[name]


def test_default_interfaces_asks_route_per_family_and_refuses_tunnels() -> None:
    route = FakeRouteGet()
    source = DefaultInterfaces(route, index_of)
    assert (source.index(V4), source.index(V6)) == (4, 4)
    assert route.calls == [
        ["/sbin/route", "-n", "get", "default"],
        ["/sbin/route", "-n", "get", "-inet6", "default"],
    ]
    route.routes = {V4: "utun3", V6: None}  # another VPN's default; no IPv6 default at all
    assert (source.index(V4), source.index(V6)) == (None, None)
    route.routes = {V4: "en9", V6: "en9"}  # gone before its index was asked
    assert source.index(V4) is None


class Sockets:
    def __init__(self, sock4: object, sock6: object) -> None:
        self.sock4 = sock4
        self.sock6 = sock6


class Recorder:
    """``setsockopt`` as the OS boundary: records (socket, level, option, value); fails when told."""

    def __init__(self) -> None:
        self.calls: list[tuple[object, int, int, bytes]] = []
        self.fail_next = 0

    def __call__(self, sock: object, level: int, option: int, value: bytes) -> None:
        if self.fail_next:
            self.fail_next -= 1
            raise OSError(errno.ENXIO, "Device not configured")
        self.calls.append((sock, level, option, value))

    def take(self) -> list[tuple[object, int, int, bytes]]:
        calls, self.calls = self.calls, []
        return calls


@pytest.fixture
def pinning() -> Iterator[tuple[BoundIfPinning, FakeRouteGet, Recorder]]:
    route, recorder = FakeRouteGet(), Recorder()
    guard = BoundIfPinning(DefaultInterfaces(route, index_of), recorder, follow=False)  # type: ignore[arg-type]
    yield guard, route, recorder
    guard.close()


RTM_ADD, RTM_DELETE, RTM_LOSING, RTM_IFINFO, RTM_NEWMADDR = 0x1, 0x2, 0x5, 0xE, 0xF
"""``<net/route.h>``, written out here."""


def rtm(kind: int, version: int = 5, length: int = 92) -> bytes:
    """A routing message: ``rt_msghdr`` (92 bytes on macOS) with only its first fields set."""
    return struct.pack("=HBB", length, version, kind) + bytes(max(0, length - 4))


CHANGE = rtm(RTM_DELETE) + rtm(RTM_ADD)
"""A default route replaced: two relevant messages in one read."""


def test_which_routing_messages_count() -> None:
    assert relevant_messages(CHANGE + rtm(RTM_IFINFO, length=112)) == 3
    assert relevant_messages(rtm(RTM_LOSING) + rtm(RTM_NEWMADDR)) == 0  # cannot move the default
    assert relevant_messages(rtm(RTM_ADD, version=4)) == 0  # another kernel's layout: not read
    assert relevant_messages(rtm(RTM_ADD)[:3]) == 0  # short read
    assert relevant_messages(rtm(RTM_ADD, length=2) + rtm(RTM_ADD)) == 0  # a bad length ends the scan
    assert (
        relevant_messages(rtm(RTM_ADD) + rtm(RTM_DELETE)[:40]) == 2
    )  # a truncated last one still says its type


def test_the_watch_thread_runs_once_per_burst_and_stops() -> None:
    ours, kernel = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    runs: list[float] = []
    watch = RoutingSocketWatch([lambda: runs.append(time.monotonic())], opener=lambda: ours)
    watch.start()
    try:
        for _ in range(5):
            kernel.send(CHANGE)
        kernel.send(rtm(RTM_LOSING))
        assert wait_for(lambda: len(runs) == 1, 10)
        time.sleep(2 * QUIET)
        assert len(runs) == 1 and watch.monitor.messages == 10
        kernel.send(rtm(RTM_LOSING))  # alone: nothing runs
        time.sleep(2 * QUIET)
        assert len(runs) == 1
    finally:
        watch.stop()
        kernel.close()
    assert watch._thread is not None and not watch._thread.is_alive()
    assert ours.fileno() == -1


def test_the_routing_socket_is_macos_only() -> None:
    """On Linux 17 is AF_PACKET: the default opener refuses rather than open that."""
    watch = RoutingSocketWatch([])
    watch.start()  # logged, no thread
    assert watch._thread is None


def test_sockets_are_tied_when_bound_and_again_when_the_default_moves(
    pinning: tuple[BoundIfPinning, FakeRouteGet, Recorder],
) -> None:
    guard, route, recorder = pinning
    s4, s6 = object(), object()
    guard.bound(Sockets(s4, s6))  # type: ignore[arg-type]
    assert recorder.take() == [(s4, IPPROTO_IP, 25, u32(4)), (s6, IPPROTO_IPV6, 125, u32(4))]

    guard.watch.follow_messages(CHANGE)  # the default route was deleted and added again: still en0
    assert recorder.take() == []

    route.routes = {V4: "en1", V6: "en0"}  # Wi-Fi to Ethernet for IPv4 only
    guard.watch.follow_messages(CHANGE)
    assert recorder.take() == [(s4, IPPROTO_IP, 25, u32(5))]

    route.routes = {V4: "utun3", V6: None}  # someone else's VPN took the default; IPv6 gone
    guard.watch.follow_messages(CHANGE)
    assert recorder.take() == [(s4, IPPROTO_IP, 25, u32(0)), (s6, IPPROTO_IPV6, 125, u32(0))]


def test_messages_that_cannot_move_the_default_route_tie_nothing(
    pinning: tuple[BoundIfPinning, FakeRouteGet, Recorder],
) -> None:
    guard, route, recorder = pinning
    guard.bound(Sockets(object(), None))  # type: ignore[arg-type]
    recorder.take()
    route.routes = {V4: "en1", V6: "en1"}
    guard.watch.follow_messages(rtm(RTM_LOSING))
    assert recorder.take() == [] and guard.watch.runs == 0


def test_a_failed_tie_is_counted_and_retried_at_the_next_change(
    pinning: tuple[BoundIfPinning, FakeRouteGet, Recorder],
) -> None:
    guard, route, recorder = pinning
    s4 = object()
    guard.bound(Sockets(s4, None))  # type: ignore[arg-type]
    recorder.take()
    route.routes[V4] = "en7"
    recorder.fail_next = 1
    guard.watch.follow_messages(rtm(RTM_DELETE))  # a failure, not an exception
    assert guard.failures == 1 and recorder.take() == []
    guard.watch.follow_messages(CHANGE)  # same answer as before, but the last tie failed: tried again
    assert recorder.take() == [(s4, IPPROTO_IP, 25, u32(11))]


def test_the_darwin_backend_gives_the_engine_this_guard() -> None:
    assert isinstance(DarwinPlatform.engine_io, DarwinEngineIO)
    assert DarwinEngineIO.compiled_reads_device


def test_the_real_engine_keeps_running_while_its_sockets_are_tied_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The engine loop (portable I/O, a utun stand-in socketpair) with the guard: its own sockets are
    tied at start and after a new listen port, tied again from another thread while it runs (one call
    failing), and it still answers UAPI afterwards."""
    monkeypatch.setenv("WGDESK_PORTABLE", "1")
    route, recorder = FakeRouteGet(), Recorder()
    routing, kernel_routing = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    guard = BoundIfPinning(
        DefaultInterfaces(route, index_of),
        recorder,  # type: ignore[arg-type]
        opener=lambda: routing,
    )
    ours, kernel = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    uapi_path = tmp_path / "standin0.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(uapi_path))
    listener.listen()
    engine = Engine(
        DarwinTun(ours.detach(), "standin0"),
        listener,
        uapi_path,
        bind=Bind.open(0, offload=False),
        udp_guard=guard,
    )
    first = engine.bind
    assert recorder.take() == [
        (first.sock4, IPPROTO_IP, 25, u32(4)),
        (first.sock6, IPPROTO_IPV6, 125, u32(4)),
    ]
    probe = Bind.open(0, offload=False)
    free = probe.port
    probe.close()
    reply, _ = engine.handle_uapi(f"set=1\nlisten_port={free}\n\n".encode())
    assert "errno=0" in reply
    assert len(route.calls) == 2  # asked once per family at start; the new pair uses the answers
    assert engine.bind is not first  # a new pair of sockets, tied before it sends
    assert recorder.take() == [
        (engine.bind.sock4, IPPROTO_IP, 25, u32(4)),
        (engine.bind.sock6, IPPROTO_IPV6, 125, u32(4)),
    ]
    loop = threading.Thread(target=engine.run, daemon=True)
    loop.start()
    try:
        route.routes = {V4: "en1", V6: "en1"}
        recorder.fail_next = 1
        kernel_routing.send(rtm(RTM_DELETE))
        assert wait_for(lambda: guard.watch.runs == 1, 10)  # the watch thread, after the quiet time
        assert guard.failures == 1
        assert recorder.take() == [(engine.bind.sock6, IPPROTO_IPV6, 125, u32(5))]  # IPv4's call failed
        kernel_routing.send(rtm(RTM_ADD))
        assert wait_for(lambda: guard.watch.runs == 2, 10)
        assert recorder.take() == [(engine.bind.sock4, IPPROTO_IP, 25, u32(5))]  # made again
        route.routes = {V4: "en7", V6: "en1"}
        kernel_routing.send(CHANGE)
        assert wait_for(lambda: guard.watch.runs == 3, 10)
        assert recorder.take() == [(engine.bind.sock4, IPPROTO_IP, 25, u32(11))]
        assert loop.is_alive()
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.settimeout(10)
            client.connect(str(uapi_path))
            client.sendall(b"get=1\n\n")
            answer = b""
            while not answer.endswith(b"\n\n"):
                chunk = client.recv(4096)
                assert chunk, answer
                answer += chunk
        assert f"listen_port={engine.bind.port}\n".encode() in answer and b"errno=0" in answer
    finally:
        engine.stop("test")
        loop.join(10)
        kernel.close()
        kernel_routing.close()
    assert not loop.is_alive()
    assert guard.watch._thread is not None and not guard.watch._thread.is_alive()  # closed with the engine
